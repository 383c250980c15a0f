"""Shared by the tests of models from the ecosystem."""

import torch


def adam_losses(net, steps: int, lr: float, **batch) -> list[float]:
    """The loss at each of ``steps`` Adam steps of ``net(**batch).loss``."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = net(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses
