"""biocredit: training neural networks without weight transport.

Build a model, attach a learning rule (a new network carrying the rule's feedback state; the
model you pass is never changed), and train it with any ``torch.optim`` optimizer::

    import torch, biocredit
    model = biocredit.models.create("mlp:2x800:tanh", input_shape=(1, 28, 28), num_classes=10)
    rule = biocredit.rules.create("dfa")
    net = rule.attach(model)
    loss_fn = biocredit.losses.create("ce")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    opt.zero_grad()
    rule.backward(net, x, y, loss_fn)   # fills .grad of every trainable parameter
    opt.step()
    rule.after_step(net)                # rules with learned feedback update it here
    rule.after_epoch(net)               # once per epoch: schedules of the feedback's learning

    for layer in biocredit.layer_views(net):
        print(layer.name, layer.weight.shape, layer.feedback, layer.grad)
"""

from . import data, layers, losses, metrics, models, rules, training
from .views import LayerView, layer_views

__version__ = "0.1.0"

__all__ = ["LayerView", "data", "layer_views", "layers", "losses", "metrics", "models", "rules",
           "training"]
