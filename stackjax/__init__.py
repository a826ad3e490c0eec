"""stackjax: entropy-regularized Stackelberg equilibria in JAX."""
