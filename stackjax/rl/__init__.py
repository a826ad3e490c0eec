"""Model-free continuous-time entropy-regularized RL for regime-switching Stackelberg games.

Learners see only trajectories of an `Environment` (``obs = (t, x, regime)`` and both
players' costs), never a game's coefficients.
"""

from ._env import Environment as Environment
from ._env import Observation as Observation
from ._env import SDEState as SDEState
from ._env import check_environment as check_environment
from ._env import sde_env as sde_env
from ._evaluation import METHODS as METHODS
from ._evaluation import ValueEstimate as ValueEstimate
from ._evaluation import evaluate_policy as evaluate_policy
from ._evaluation import fit_policy_values as fit_policy_values
from ._qlearning import Config as Config
from ._qlearning import GridPolicy as GridPolicy
from ._qlearning import RLResult as RLResult
from ._qlearning import TrainState as TrainState
from ._qlearning import learn as learn
from ._qlearning import make_train as make_train
from ._qlearning import result_from as result_from
from ._rollout import Batch as Batch
from ._rollout import rollout as rollout

__all__ = [
    "Config",
    "GridPolicy",
    "RLResult",
    "TrainState",
    "learn",
    "make_train",
    "result_from",
    "METHODS",
    "Batch",
    "Environment",
    "Observation",
    "SDEState",
    "ValueEstimate",
    "check_environment",
    "evaluate_policy",
    "fit_policy_values",
    "rollout",
    "sde_env",
]
