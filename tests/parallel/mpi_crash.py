"""The training script with one process made to fail on purpose, for tests/parallel/test_mpi.py:
``mpiexec -n 2 python tests/parallel/mpi_crash.py RANK STEP HOW [training-script options]`` runs
minialex.train.cli.main in every process, and in process RANK the training step number STEP
raises a RuntimeError (HOW ``raise``), as a bug or a failing disk would, or stops answering
(HOW ``hang``), as a process stuck on a dead file system would."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from minialex.train import cli, trainer  # noqa: E402


def main():
    rank, step, how = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    steps = {"n": 0}
    original = trainer.Trainer.train_step

    def failing_step(self, images, labels):
        steps["n"] += 1
        if self.world.rank == rank and steps["n"] == step:
            if how == "hang":
                time.sleep(3600)
            raise RuntimeError(f"failure made on purpose in step {step}")
        return original(self, images, labels)

    trainer.Trainer.train_step = failing_step
    return cli.main(sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
