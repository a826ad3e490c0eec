"""Every Python block of README.md runs as pasted, and the two commands are the ones CI runs."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.long_loops
def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    # The quick start's solve is accurate, and the HJB game is what the text says it is.
    assert float(namespace["errors"]["value"].max()) < 1e-3
    hjb = namespace["hjb"]
    assert (hjb.state_dim, hjb.num_regimes, hjb.leader_dim, hjb.noise_dim) == (100, 1, 100, 100)


def test_readme_starts_with_the_main_job_and_the_ci_test_command():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.DOTALL)
    assert commands[0].startswith("python -m pip install -e") and "stackjax solve" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci  # CI runs the README's test command
