"""Port studies: a YAML spec → a plan of cells → executors → one record per condition → metrics.

from loraport.bench import load_study, run_study
run_study(load_study("studies/demo.yaml"), "runs/demo")
"""

from loraport.bench.executors import EXECUTORS
from loraport.bench.runner import plan_study, run_study
from loraport.bench.spec import Study, StudyError, load_study

__all__ = ["EXECUTORS", "Study", "StudyError", "load_study", "plan_study", "run_study"]
