"""Discrete-time Stackelberg learners with an entropy-regularized (quantal) follower."""
