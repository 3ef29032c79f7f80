"""Reports from stored records alone: report.md, summary.json, figures/. Imports no torch."""

from loraport.report.build import build_report

__all__ = ["build_report"]
