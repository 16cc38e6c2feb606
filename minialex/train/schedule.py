"""Learning-rate schedules: the paper's "divide by 10 when validation error stops
improving", and a fixed step schedule. Their state is a small dict, saved in checkpoints."""


class PlateauSchedule:
    """Divide the learning rate by ``factor`` when validation error has not improved
    by more than ``threshold`` for ``patience`` epochs (the paper did this by hand,
    three times in about 90 epochs)."""

    def __init__(self, lr, factor=10.0, patience=3, threshold=1e-3, min_lr=1e-6):
        self.lr, self.factor, self.patience = float(lr), float(factor), int(patience)
        self.threshold, self.min_lr = float(threshold), float(min_lr)
        self.best = float("inf")
        self.bad_epochs = 0

    def step(self, epoch, val_error):
        """Record the error after ``epoch``; return the learning rate for the next epoch."""
        if val_error < self.best - self.threshold:
            self.best, self.bad_epochs = float(val_error), 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience and self.lr / self.factor >= self.min_lr:
                self.lr /= self.factor
                self.bad_epochs = 0
        return self.lr

    def state_dict(self):
        return {"kind": "plateau", "lr": self.lr, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.lr, self.best, self.bad_epochs = state["lr"], state["best"], state["bad_epochs"]


class StepSchedule:
    """lr = base * gamma ** (number of milestones reached), like torchvision's StepLR
    with ``--lr-step-size`` (every ``step_size`` epochs, counted from ``start_epoch``: a schedule
    restarted on --resume counts from the epoch it restarted at)."""

    def __init__(self, lr, step_size=30, gamma=0.1, start_epoch=0):
        self.base, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)
        self.start_epoch = int(start_epoch)
        self.lr = self.base

    def step(self, epoch, val_error=None):
        self.lr = self.base * self.gamma ** ((epoch + 1 - self.start_epoch) // self.step_size)
        return self.lr

    def state_dict(self):
        return {"kind": "step", "lr": self.lr, "base": self.base, "start_epoch": self.start_epoch}

    def load_state_dict(self, state):
        self.lr = state["lr"]
        self.base = state.get("base", self.base)  # (older checkpoints kept the current rate alone)
        self.start_epoch = state.get("start_epoch", 0)


def make_schedule(kind, lr, patience=3, step_size=30, start_epoch=0):
    """The schedule ``kind`` ("plateau" or "step") starting at ``lr``; on a restart (--resume with
    a schedule flag) the step schedule counts its epochs from ``start_epoch``."""
    if kind == "plateau":
        return PlateauSchedule(lr, patience=patience)
    if kind == "step":
        return StepSchedule(lr, step_size=step_size, start_epoch=start_epoch)
    raise ValueError(f"unknown schedule {kind!r}; use 'plateau' or 'step'")
