"""Discrete-time Stackelberg learners with an entropy-regularized (quantal) follower.

Normal-form oracles (:func:`strong_stackelberg`, :func:`quantal_stackelberg`), episodic
leader-follower Markov games with a soft (logit) follower, and leaders that learn the
follower's reward from its actions by maximum likelihood (optimistic online, pessimistic
offline).
"""

from ._env import Environment, Transition, auto_reset, markov_environment
from ._learning import (
    ConfidenceSet,
    FollowerDataset,
    FollowerModelFit,
    collect_dataset,
    confidence_radius,
    confidence_set,
    dataset_from_trajectories,
    fit_follower_model,
    follower_log_likelihood,
    identified_follower_reward,
)
from ._lp import LinearProgramResult, solve_standard_form_lp
from ._markov import (
    EnvState,
    FollowerResponse,
    MarkovGame,
    MarkovStackelbergSolution,
    Trajectory,
    follower_response,
    initial_policies,
    leader_value,
    make_markov_game,
    markov_quantal_stackelberg,
    random_markov_game,
    reset,
    rollout,
    step,
)
from ._normal_form import (
    QuantalStackelbergSolution,
    StackelbergSolution,
    quantal_response,
    quantal_stackelberg,
    simplex_grid,
    strong_stackelberg,
)
from ._optim import project_to_simplex, projected_ascent
from ._planning import (
    OfflineLearningResult,
    OnlineLearningResult,
    offline_pessimistic_leader,
    online_optimistic_leader,
    optimistic_value,
)
from ._response import forward_flow, soft_backward, soft_response

__all__ = [
    "ConfidenceSet",
    "EnvState",
    "Environment",
    "FollowerDataset",
    "FollowerModelFit",
    "FollowerResponse",
    "LinearProgramResult",
    "MarkovGame",
    "MarkovStackelbergSolution",
    "OfflineLearningResult",
    "OnlineLearningResult",
    "QuantalStackelbergSolution",
    "StackelbergSolution",
    "Trajectory",
    "Transition",
    "auto_reset",
    "collect_dataset",
    "confidence_radius",
    "confidence_set",
    "dataset_from_trajectories",
    "fit_follower_model",
    "follower_log_likelihood",
    "follower_response",
    "forward_flow",
    "identified_follower_reward",
    "initial_policies",
    "leader_value",
    "make_markov_game",
    "markov_environment",
    "markov_quantal_stackelberg",
    "offline_pessimistic_leader",
    "online_optimistic_leader",
    "optimistic_value",
    "project_to_simplex",
    "projected_ascent",
    "quantal_response",
    "quantal_stackelberg",
    "random_markov_game",
    "reset",
    "rollout",
    "simplex_grid",
    "soft_backward",
    "soft_response",
    "solve_standard_form_lp",
    "step",
    "strong_stackelberg",
]
