"""fast.retain_freed_memory: opt-in only, and switchable off by the environment.
(Run in subprocesses: it changes the allocator of the whole process.)"""

import os
import subprocess
import sys

CODE = "from minialex.nn import fast; print(fast.retain_freed_memory())"


def run(env_extra):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_applies_on_glibc_and_env_turns_it_off():
    on_glibc = sys.platform.startswith("linux")
    assert run({}) == str(on_glibc)
    assert run({"MINIALEX_KEEP_MALLOC": "1"}) == "False"


def test_layers_never_call_it():
    source = open(os.path.join(os.path.dirname(__file__), "..", "..", "minialex", "nn", "fast.py")).read()
    body = source.split("def retain_freed_memory", 1)[0] + source.split("def retain_freed_memory", 1)[1].split("\ndef ", 1)[1]
    assert "retain_freed_memory(" not in body  # only its definition mentions it
