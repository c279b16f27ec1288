"""The operator SDK: what code inside an analysis container uses (stdlib only).

Imports nothing from openjip's services or from Airflow, so an operator image needs only this
package and its own dependencies. Typical use::

    from openjip import sdk

    def main() -> None:
        threshold = sdk.params()["threshold"]
        for series in sdk.inputs():
            ...  # read series.files(), write into series.output_dir()
            sdk.progress(1.0, f"{series.name} done")

    sdk.run(main)
"""

from openjip.sdk.contract import (
    ERROR_PREFIX,
    INPUT_ENV,
    OPERATOR_ENV,
    OUTPUT_ENV,
    PARAMS_ENV,
    PROGRESS_PREFIX,
    Progress,
)
from openjip.sdk.step import (
    OperatorIdentity,
    StepError,
    StepInput,
    fail,
    input_dir,
    inputs,
    log,
    operator,
    output_dir,
    params,
    progress,
    run,
)

__all__ = [
    "ERROR_PREFIX",
    "INPUT_ENV",
    "OPERATOR_ENV",
    "OUTPUT_ENV",
    "PARAMS_ENV",
    "PROGRESS_PREFIX",
    "OperatorIdentity",
    "Progress",
    "StepError",
    "StepInput",
    "fail",
    "input_dir",
    "inputs",
    "log",
    "operator",
    "output_dir",
    "params",
    "progress",
    "run",
]
