"""Classical baselines that stackjax is compared against (run as scripts, not imported by it)."""
