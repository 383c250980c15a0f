"""Lillicrap et al. 2016: feedback alignment (our copy is a summary: figure captions, no
methods, so most settings are our choices, each stated)."""

from __future__ import annotations

from ..claims import Claim
from ..preset import SHORT_IMAGES, Preset, Setting, Step, cost, one

SOURCE = "lillicrap"
FIG1 = "Lillicrap 2016, Fig. 1"
LINEAR = "Four algorithms learn to mimic a linear function"
USEFUL = "Random feedback weights can deliver useful teaching signals to preceding layers of " \
    "a neural network."
FAST = "We demonstrate that this new mechanism performs as quickly and accurately as " \
    "backpropagation on a variety of problems"
MNIST = "Feedback alignment solves nonlinear, real-world problems."
MNIST_NET = "A 784--1000--10 network of logistic units learns to recognize handwritten digits."
MNIST_TEST = "on 10,000 test images"
PSEUDO = "If $W_{0}$ and $W$ start small then $W$ learns to act like a local pseudoinverse " \
    "of $B$."
DEEP = "Feedback alignment can train deeper layers via random weights, e.g. $B_{1}$ and " \
    "$B_{2}$."
NONLINEAR = "Normalized squared error curves, each an average over 20 trials, for a " \
    "nonlinear function-approximation task; three-layer network trained with shallow " \
    "learning (grey), backprop (black), and feedback alignment (green); four-layer network " \
    "trained with backprop (magenta) and feedback alignment (blue)."
OMEGAS = ("0.0001", "0.001", "0.01", "0.05", "0.1", "0.125", "0.15", "0.2", "0.25")
OMEGA_QUOTE = "with the elements of $W_{0}$ and $W$ drawn uniformly from " \
    r"$\left[-\omega,\omega\right]$, where " \
    r"$\omega=[0.0001,0.001,0.01,0.05,0.1,0.125,0.15,0.2,0.25]$"
NO_METHODS = "the methods are not in our copy"

LINEAR_RUN = ("--task", "regress", "--data", "linear-teacher", "--model", "mlp:1x20:linear",
              "--optimizer", "sgd", "--lr", "0.002", "--batch-size", "1", "--train-size", "500",
              "--epochs", "100", "--tsne-size", "0")
LINEAR_SETTINGS = (
    Setting("task", "y = T x, a 30-20-10 linear network, NSE", LINEAR),
    Setting("data", "500 training pairs of the linear teacher, 1,000 test pairs",
            choice=f"{NO_METHODS}; enough pairs that NSE on held-out x measures learning T"),
    Setting("optimizer", "plain SGD, learning rate 0.002, one example a step",
            choice=f"{NO_METHODS}; online learning as the figure's algorithms are written"),
    Setting("initialisation", "uniform ±1/√fan_in, B uniform ±1/√fan_in",
            choice=f"{NO_METHODS}; the library's default"),
    Setting("epochs", "100", choice=f"{NO_METHODS}; every rule has flattened by then"),
)
NONLINEAR_RUN = ("--task", "regress", "--data", "nonlinear-teacher", "--optimizer", "sgd",
                 "--lr", "0.01", "--batch-size", "10", "--epochs", "50", "--seeds", "20",
                 "--tsne-size", "0")
MNIST_SETTINGS = (
    Setting("data", "MNIST, 60,000 training and 10,000 test images, pixels in [0, 1]",
            MNIST_TEST),
    Setting("architecture", "784-1000-10, logistic hidden and output units", MNIST_NET),
    Setting("loss", "binary cross-entropy on the logistic outputs",
            choice=f"{NO_METHODS}; the natural loss of logistic output units"),
    Setting("optimizer", "plain SGD, learning rate 0.1, batches of 64",
            choice=f"{NO_METHODS}; a standard rate for a logistic MLP"),
    Setting("initialisation", "uniform ±1/√fan_in, B uniform ±1/√fan_in",
            choice=f"{NO_METHODS}; the library's default"),
    Setting("epochs and seeds", "50 epochs, 3 seeds",
            choice=f"{NO_METHODS} (the figure shows 'representative' curves)"),
)

PRESETS = [
    Preset("lillicrap-linear",
           "30-20-10 linear net learns y = T x: shallow, node perturbation, BP, FA",
           one("compare", "--rules", "shallow,node-perturbation,bp,fa", *LINEAR_RUN,
               "--seeds", "10"),
           "Lillicrap 2016, Fig. 1d-e: FA learns as fast as BP, far below shallow learning; "
           "its hidden update's angle to BP's falls below 90°",
           (Claim("fa.test_error < shallow.test_error", LINEAR, FIG1),
            Claim("fa.test_error_area - bp.test_error_area < 0.05 and "
                  "fa.test_error - bp.test_error < 0.01", FAST, "Lillicrap 2016, Abstract",
                  note="'as quickly' read as FA's NSE averaged over the epochs within 0.05 of "
                       "BP's, 'as accurately' as its final NSE within 0.01"),
            Claim("fa.mean_angle_deg < 90", USEFUL, FIG1,
                  note="angle between FA's and BP's weight updates of the hidden layer"),
            Claim("node_perturbation.test_error < shallow.test_error", LINEAR, FIG1,
                  note="node perturbation also learns the hidden layer, so it ends below "
                       "shallow learning")),
           SOURCE, (*LINEAR_SETTINGS,
                    Setting("seeds", "10", choice=f"{NO_METHODS}; the teacher task is cheap")),
           short=("--epochs", "20", "--seeds", "2"), figures=("errors.png", "alignment.png"),
           cost=cost(40, 100, 0.3, 0.5)),
    Preset("lillicrap-small-weights",
           "FA on the linear teacher from W0, W ~ U(−ω, ω) for the paper's 9 values of ω: the "
           "hidden update's angle to backprop's and to pseudo-backprop's",
           tuple(Step(("compare", "--rules", "fa", "--init-scale", omega, *LINEAR_RUN,
                       "--seeds", "3"), "omega_" + omega.replace(".", "_"))
                 for omega in OMEGAS),
           "Lillicrap 2016, Fig. 4 (its curves are lost in our copy)",
           (Claim("omega_0_0001.fa.pseudo_angle_deg < omega_0_0001.fa.hidden_angle_deg",
                  PSEUDO, "Lillicrap 2016, Fig. 4",
                  note="the angle of FA's hidden update B e to pseudo-backprop's W⁺ e below "
                       "its angle to backprop's Wᵀ e, at the end of training"),
            Claim("omega_0_0001.fa.pseudo_angle_deg < omega_0_25.fa.pseudo_angle_deg",
                  PSEUDO, "Lillicrap 2016, Fig. 4",
                  note="the smaller the initial weights, the closer to pseudo-backprop")),
           SOURCE, (*LINEAR_SETTINGS[:3],
                    Setting("initialisation", "W0, W ~ U(−ω, ω), 9 values of ω", OMEGA_QUOTE),
                    LINEAR_SETTINGS[4],
                    Setting("seeds", "3 per ω", choice="the paper shows a single run per ω; "
                            "3 seeds give the claims a margin")),
           short=("--epochs", "20", "--seeds", "1"), figures=("errors.png",),
           cost=cost(27, 100, 0.3, 0.5)),
    Preset("lillicrap-mnist", "784-1000-10 logistic net on MNIST: shallow, BP and FA",
           one("compare", "--rules", "shallow,bp,fa", "--model", "mlp:1x1000:logistic",
               "--loss", "bce", "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "64",
               "--data", "mnist", "--normalize", "scale", "--epochs", "50", "--seeds", "3",
               "--tsne-size", "0"),
           "Lillicrap 2016, Fig. 2a-b (its curves and numbers are lost in our copy)",
           (Claim("fa.test_error < shallow.test_error and bp.test_error < shallow.test_error",
                  MNIST, "Lillicrap 2016, Fig. 2a"),
            Claim("fa.test_error - bp.test_error < 0.005 and "
                  "fa.test_error_area - bp.test_error_area < 0.01", FAST,
                  "Lillicrap 2016, Abstract",
                  note="'as accurately' read as FA's final test error within half a point of "
                       "BP's, 'as quickly' as its test error averaged over the epochs within a "
                       "point"),
            Claim("fa.mean_angle_deg < 90", MNIST, "Lillicrap 2016, Fig. 2b")),
           SOURCE, MNIST_SETTINGS, short=(*SHORT_IMAGES, "--epochs", "5"),
           cost=cost(9, 50, 8, 1.5)),
    Preset("lillicrap-nonlinear",
           "nonlinear function approximation: a 3-layer net (shallow, BP, FA) and a 4-layer "
           "net (BP, FA), averaged over 20 trials",
           (Step(("compare", "--rules", "shallow,bp,fa", "--model", "mlp:1x20:tanh",
                  *NONLINEAR_RUN), "three_layer"),
            Step(("compare", "--rules", "bp,fa", "--model", "mlp:2x20:tanh", *NONLINEAR_RUN),
                 "four_layer")),
           "Lillicrap 2016, Fig. 2c-d: NSE curves, each an average over 20 trials",
           (Claim("three_layer.fa.test_error < three_layer.shallow.test_error", MNIST,
                  "Lillicrap 2016, Fig. 2d"),
            Claim("four_layer.fa.test_error < three_layer.fa.test_error and "
                  "four_layer.fa.mean_angle_deg < 90", DEEP, "Lillicrap 2016, Fig. 2c-d",
                  note="the 4-layer FA net ends below the 3-layer FA net (the blue curve under "
                       "the green one), with both hidden layers' updates within 90° of BP's")),
           SOURCE,
           (Setting("task", "a nonlinear teacher; 3-layer (1x20 tanh) and 4-layer (2x20 tanh) "
                    "students", NONLINEAR),
            Setting("seeds", "20", NONLINEAR),
            Setting("optimizer", "plain SGD, learning rate 0.01, batches of 10",
                    choice=f"{NO_METHODS}"),
            Setting("epochs", "50", choice=f"{NO_METHODS}; every rule has flattened by then")),
           short=("--epochs", "10", "--seeds", "3"),
           cost=cost(100, 50, 0.5, 0.5)),
]
