"""Webster et al.: direct Kolen-Pollack (DKP), learned direct feedback. Our copy is an
excerpt: no settings, no numbers; the data sets are named."""

from __future__ import annotations

from ..claims import Claim
from ..preset import SHORT_IMAGES, Preset, Setting, cost, one

SOURCE = "webster"
BETTER = "We empirically show the mechanisms that allow the improvement in our approach over " \
    "DFA by measuring DKP's ability to better estimate the backpropagation algorithm."
GAP = "The proposed method improves the accuracy of learning by direct feedback connections " \
    "and reduces the gap between parallel training to serial training by means of " \
    "backpropagation."
CONV_POOR = "However, just as feedback alignment, DFA does not perform well in deep " \
    "convolutional networks."
DATA = "We also show this improvement directly by training two deep convolutional neural " \
    "network architectures on the Fashion-MNIST, CIFAR10, CIFAR100, and TinyIm-ageNet200 " \
    "(Le & Yang, 2015) datasets."
NOT_IN_EXCERPT = "our copy is an excerpt without the training settings"
SETTINGS = (
    Setting("data", "Fashion-MNIST, standardised", DATA),
    Setting("optimizer", "Adam, learning rate 10⁻³ (feedback: the rule's defaults), batches "
            "of 128", choice=NOT_IN_EXCERPT),
    Setting("epochs and seeds", "50 epochs, 3 seeds", choice=NOT_IN_EXCERPT),
)
RUN = ("--data", "fashion-mnist", "--normalize", "standardize", "--epochs", "50", "--seeds",
       "3", "--tsne-size", "0")

PRESETS = [
    Preset("dkp-convnet", "BP, FA, DFA, DKP on dkp-convnet, Fashion-MNIST, angles per layer",
           one("compare", "--rules", "bp,fa,dfa,dkp", "--model", "dkp-convnet",
               "--batch-size", "128", *RUN),
           "Webster et al. (per-layer angles and errors lost in our copy)",
           (Claim("dkp.test_error < dfa.test_error", GAP, "Webster et al., Abstract"),
            Claim("dkp.first_mean_angle_deg < dfa.first_mean_angle_deg and "
                  "dkp.mean_angle_deg < dfa.mean_angle_deg", BETTER,
                  "Webster et al., Introduction",
                  note="DKP's angle to BP below DFA's after the first epoch and at the end"),
            Claim("dfa.test_error > bp.test_error", CONV_POOR, "Webster et al., Abstract")),
           SOURCE, (Setting("architecture", "dkp-convnet", choice="the excerpt names 'two deep "
                            "convolutional neural network architectures' without their layers"),
                    *SETTINGS),
           short=(*SHORT_IMAGES, "--epochs", "2"),
           cost="12 runs × 50 epochs of 60,000 images: about 20 hours on 2 CPU cores, under "
                "an hour on one H100"),
    Preset("dkp-mlp", "DFA against DKP on mlp:2x800:tanh, Fashion-MNIST (our MLP extension)",
           one("compare", "--rules", "dfa,dkp", "--model", "mlp:2x800:tanh", "--lr", "3e-4",
               *RUN),
           "the excerpt runs conv nets only; this MLP is our extension",
           (Claim("dkp.mean_angle_deg < dfa.mean_angle_deg", "ours: DKP's update nearer BP's "
                  "than DFA's in an MLP", "our extension"),),
           SOURCE, (Setting("everything", "Adam 3·10⁻⁴, batches of 64, 50 epochs, 3 seeds",
                            choice="our extension: the excerpt runs no MLP"), SETTINGS[0]),
           short=(*SHORT_IMAGES, "--epochs", "5"), extension=True,
           cost=cost(6, 50, 10, 1.5)),
]
