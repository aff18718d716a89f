"""moto's server as the local stack runs it: the pinned moto (local/moto-requirements.txt) with two fixes to its
Step Functions executor, so that the engine's watched waits (`.waitForTaskToken` tasks) behave locally as they do
on AWS. Each fix is checked by the end-to-end tests that need it; drop it when moto ships the fix.

1. SendTaskFailure keeps its `cause`: moto's JSON handler passes only `error` on, so an execution failed through a
   task token ends with no cause (AWS keeps it; the engine puts the alarm's name, reason and time there).
2. StopExecution wakes a task waiting for its token: moto stops the program but leaves the waiting thread asleep
   until the wait's timeout (a whole bake), so the execution reads RUNNING until then; AWS aborts it at once. The
   woken wait then ends with an error, which must not turn the stopped execution into a FAILED one.

Run as `python server.py [moto_server arguments]`.
"""
import inspect
import sys

from moto.core.responses import EmptyResult
from moto.server import main
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.responses import StepFunctionResponse


def send_task_failure(self):
    failure = {"error": self._get_param("error")}
    if "cause" in inspect.signature(self.stepfunction_backend.send_task_failure).parameters:
        failure["cause"] = self._get_param("cause")
    self.stepfunction_backend.send_task_failure(self._get_param("taskToken"), **failure)
    return EmptyResult()


stop = Execution.stop


def stop_and_wake(self, stop_date, error, cause):
    stop(self, stop_date, error, cause)
    worker = self.exec_worker
    if worker is not None:
        # The program is stopped: a woken wait ends, and the program goes no further.
        for endpoint in list(worker.env.callback_pool_manager._pool.values()):
            endpoint.interrupt_all()


set_error = Environment.set_error


def set_error_unless_stopped(self, error):
    if not isinstance(self.program_state(), ProgramStopped):
        set_error(self, error)


StepFunctionResponse.send_task_failure = send_task_failure
Execution.stop = stop_and_wake
Environment.set_error = set_error_unless_stopped

if __name__ == "__main__":
    main(sys.argv[1:])
