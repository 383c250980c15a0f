"""Flam-Shepherd et al.: the general feedback rule (strategies s1-s3, auxiliary errors),
autoencoders, and DFA/FA with structured feedback B1-B7. Tables 2-4 are in our copy."""

from __future__ import annotations

from ..claims import Claim
from ..claims import identifier as run_name
from ..preset import SHORT_IMAGES, Preset, Setting, Step, cost, one

SOURCE = "flam-shepherd"
RESULTS = "Flam-Shepherd, Results"
ALMOST = "The results of experiment 1 and 2 show that the proposed error transportation " \
    "configurations are almost as good as DFA and FA"
AUX_BEST = "Notice the best result (1.66) is comparable to Nokland's [2]."
TABLE2_QUOTE = "Various models and test error percentages for 3 error transportation " \
    "configurations from Figure 2."
B_QUOTE = "The last experiment showed that it is possible for learning to occur if the " \
    r"condition  $\mathbf{B}^+\mathbf{B} = I$  for FA and DFA from [2] is ignored."
AE_WORSE = "Notice that DFA and strategies 1-3 are of reasonable and similar quality, but are " \
    "all worse that backpropagation."
AE_S2 = "Strategy 2 is the worst."
WIDTHS = (200, 400, 800)
ACTIVATIONS = (("tanh", "tanh"), ("relu", "relu"), ("logistic", "sigmoid"))
# Tables 2 and 3 (test error %, MNIST): experiment 1 (output error) and 2 (auxiliary errors).
TABLE2 = {"tanh": ((2.32, 2.36, 2.42), (2.02, 2.07, 1.96), (1.96, 1.95, 2.03)),
          "relu": ((2.55, 2.45, 2.75), (2.15, 2.23, 2.12), (2.03, 2.09, 2.05)),
          "sigmoid": ((2.45, 2.51, 2.63), (2.12, 2.18, 2.14), (1.99, 1.98, 1.95))}
TABLE3 = {"tanh": ((2.42, 2.57, 2.40), (1.92, 2.05, 1.99), (1.66, 1.86, 1.87)),
          "relu": ((2.45, 2.51, 2.67), (2.17, 2.27, 2.32), (1.87, 2.02, 2.13)),
          "sigmoid": ((2.43, 2.63, 2.77), (2.19, 2.36, 2.41), (1.91, 2.04, 2.11))}
TABLE4_DFA = (2.19, 2.32, 2.40, 2.04, 2.22, 2.27, 2.38)
TOLERANCE = "0.003"       # 0.3 points, or two standard deviations over seeds if larger
STRATEGIES = tuple(f"general:strategy=s{i}" for i in (1, 2, 3))
AUX = tuple(f"{s}:aux_errors=true" for s in STRATEGIES)
METHODS = "Stochastic gradient descent with a learning rate of 0.001 was used throughout."

SETTINGS = (
    Setting("data", "MNIST, 60,000 training and 10,000 test images, pixels in [0, 1]",
            "To test the proposed configurations we implement them on the MNIST data set."),
    Setting("architecture", "2 hidden layers of 200, 400 or 800 tanh, ReLU or sigmoid units",
            "Networks with 200, 400 and 800 neurons in each layer are considered as well as "
            "Tanh, Relu and Sigmoid activations."),
    Setting("initialisation", "Xavier (Glorot-uniform) weights, biases N(0, 1)",
            "The weights are initialized using Xavier initialization and the bias are "
            "initialized to be standard normally distributed."),
    Setting("feedback", "B ~ U(−1/2, 1/2)", "The random matrices are  $\\mathbf{B}^i \\sim "
            "\\text{Unif}(-1/2, 1/2)$ ."),
    Setting("optimizer", "plain SGD, 0.001 per example: steps of 0.016 on the mean gradient "
            "of 16 examples", METHODS),
    Setting("batch size", "16", choice="the paper gives none. Its rate 0.001 is read per "
            "example (the summed-gradient convention of online SGD: 100 epochs at 0.001 per "
            "mean-gradient step would not reach the paper's 0.01 % train error), so a batch "
            "of B takes steps of B × 0.001. B = 64 (steps of 0.064) diverged within 80 steps "
            "for 2x200 ReLU nets (s1 and DFA, 5,000 MNIST images) where B = 16 and B = 8 "
            "learned; flam-shepherd-strategies runs the 2x800 tanh net again with batches of "
            "8 (steps of 0.008) to show the verdicts do not hang on it"),
    Setting("loss", "binary cross-entropy on logistic outputs (error e = ŷ − y)",
            choice="the paper's classification loss is not stated; a softmax error sums to "
                   "zero, which would make B1 (ones + noise) act as B7 (noise) and B5 as "
                   "a scaled random matrix, while Table 4 shows them apart"),
    Setting("epochs", "100", "The networks were trained for 100 epochs only, at this point "
            "the training error was always less than 0.01%."),
    Setting("seeds", "3", choice="the paper reports one run per cell"),
)


def run(lr: str = "0.016", batch: str = "16") -> tuple[str, ...]:
    return ("--data", "mnist", "--normalize", "scale", "--loss", "bce", "--optimizer", "sgd",
            "--lr", lr, "--batch-size", batch, "--init", "flam-shepherd", "-O",
            "feedback_scale=0.5", "--epochs", "100", "--seeds", "3", "--tsne-size", "0")


SHORT = (*SHORT_IMAGES, "--epochs", "3")
SMOKE = ("--lr", "0.002", "--batch-size", "64")   # the stand-in data diverges at the paper's rate


def near_table(prefix: str, specs: tuple[str, ...], row: tuple[float, ...], quote: str,
               source: str) -> tuple[Claim, ...]:
    return tuple(Claim(f"near({prefix}{run_name(spec)}.test_error, {value / 100:.4f}, "
                       f"{TOLERANCE})", quote, source, paper=f"{value} %",
                       note="within 0.3 points or two standard deviations over seeds")
                 for spec, value in zip(specs, row))


def strategies_claims(prefix: str = "") -> tuple[Claim, ...]:
    p = prefix
    return (
        *near_table(p, STRATEGIES, TABLE2["tanh"][2], TABLE2_QUOTE, "Flam-Shepherd, Table 2"),
        *near_table(p, AUX, TABLE3["tanh"][2], TABLE2_QUOTE, "Flam-Shepherd, Table 3"),
        Claim(f"max({', '.join(f'{p}{run_name(s)}.test_error' for s in STRATEGIES)}) < "
              f"min({p}dfa.test_error, {p}fa.test_error) + 0.005", ALMOST, RESULTS,
              note="experiment 1: 'almost as good' read as every strategy within half a "
                   "point of the better of DFA and FA"),
        Claim(f"max({', '.join(f'{p}{run_name(s)}.test_error' for s in AUX)}) < "
              f"min({p}dfa.test_error, {p}fa.test_error) + 0.005", ALMOST, RESULTS,
              note="experiment 2 (auxiliary errors), read the same way"),
        Claim(f"{p}{run_name(AUX[0])}.test_error < min({p}{run_name(AUX[1])}.test_error, "
              f"{p}{run_name(AUX[2])}.test_error)", AUX_BEST, "Flam-Shepherd, Table 3",
              paper="s1 1.66 %, s2 1.86 %, s3 1.87 %",
              note="the best (s1 with auxiliary errors) read off Table 3"))


PRESETS = [
    Preset("flam-shepherd-strategies",
           "2x800 tanh: s1-s3 with the output error (experiment 1) and with auxiliary errors "
           "(experiment 2), DFA and FA; again with batches of 8",
           (Step(("compare", "--rules", ",".join(("dfa", "fa", *STRATEGIES, *AUX)), "--model",
                  "mlp:2x800:tanh", *run()), "batch16"),
            Step(("compare", "--rules", ",".join(("dfa", "fa", *STRATEGIES, *AUX)), "--model",
                  "mlp:2x800:tanh", *run("0.008", "8")), "batch8")),
           "Flam-Shepherd, Tables 2-3 (MNIST, 2x800 tanh: s1/s2/s3 1.96/1.95/2.03 % with the "
           "output error, 1.66/1.86/1.87 % with auxiliary errors)",
           (*strategies_claims("batch16."), *strategies_claims("batch8.")),
           SOURCE, SETTINGS, short=SHORT, smoke=SMOKE,
           cost=cost(48, 100, 30, 8, "the batch-8 step takes about twice the batch-16 one")),
    Preset("flam-shepherd-grid", "Tables 2-3 as a grid: 200/400/800 units x tanh/ReLU/sigmoid, "
                                 "strategies 1-3 with the output and with auxiliary errors",
           tuple(Step(("compare", "--rules", ",".join((*STRATEGIES, *AUX)), "--model",
                       f"mlp:2x{width}:{act}", *run()), f"w{width}_{name}")
                 for act, name in ACTIVATIONS for width in WIDTHS),
           "Flam-Shepherd, Tables 2-3 (MNIST: every cell's test error in %)",
           (*(c for _, name in ACTIVATIONS for w, width in enumerate(WIDTHS)
              for c in (*near_table(f"w{width}_{name}.", STRATEGIES, TABLE2[name][w],
                                    TABLE2_QUOTE, "Flam-Shepherd, Table 2"),
                        *near_table(f"w{width}_{name}.", AUX, TABLE3[name][w], TABLE2_QUOTE,
                                    "Flam-Shepherd, Table 3"))),
            *(Claim(f"w800_{a}.{run_name(s)}.test_error < w200_{a}.{run_name(s)}.test_error",
                    TABLE2_QUOTE, "Flam-Shepherd, Tables 2-3",
                    note="read off the tables: 2x800 beats 2x200 in every cell")
              for _, a in ACTIVATIONS for s in (*STRATEGIES, *AUX))),
           SOURCE, SETTINGS, short=(*SHORT, "--epochs", "2"), smoke=SMOKE,
           figures=("errors.png",),
           cost=cost(162, 100, 20, 4)),
    Preset("flam-shepherd-b1-b7",
           "DFA and FA with Flam-Shepherd's structured feedback B1-B7, 2x800 tanh",
           one("compare", "--rules", ",".join(f"{rule}:feedback_init=b{i}" for rule in
                                              ("dfa", "fa") for i in range(1, 8))
               + ",dfa,fa", "--model", "mlp:2x800:tanh", *run()),
           "Flam-Shepherd, Table 4 (DFA, MNIST: 2.19, 2.32, 2.40, 2.04, 2.22, 2.27, 2.38 % for "
           "B1-B7; of the FA row only one 4.64 % survives in our copy, column unknown)",
           (*near_table("", tuple(f"dfa:feedback_init=b{i}" for i in range(1, 8)), TABLE4_DFA,
                        "Test error percentages for DFA and FA for  $B_i$ , with the 2 x 800 "
                        "tanh model", "Flam-Shepherd, Table 4"),
            Claim("max(fa_feedback_init_b1.test_error, fa_feedback_init_b2.test_error, "
                  "fa_feedback_init_b3.test_error, fa_feedback_init_b4.test_error, "
                  "fa_feedback_init_b5.test_error, fa_feedback_init_b6.test_error, "
                  "fa_feedback_init_b7.test_error) < 0.5", B_QUOTE, "Flam-Shepherd, Table 4",
                  paper="FA row lost in our copy but for one 4.64 %",
                  note="'learning occurs' read as a test error below 50 % (chance: 90 %)")),
           SOURCE, (*SETTINGS,
                    Setting("structured feedback", "B1-B7 as listed; noise N(0, 0.01) read as "
                            "standard deviation 0.01; sparse: each entry one with probability "
                            "0.1", "The noise is N(0, 0.01) and the sparsity is randomly done "
                            "using numpy.")),
           short=SHORT, smoke=SMOKE,
           cost=cost(48, 100, 25, 4)),
    Preset("flam-shepherd-autoencoders",
           "784-128-128-784 and 784-800-800-784 autoencoders: BP, DFA, s1-s3",
           tuple(Step(("compare", "--task", "autoencoder", "--rules",
                       ",".join(("bp", "dfa", *STRATEGIES)), "--model", f"mlp:2x{width}:tanh",
                       *(a for a in run() if a not in ("--loss", "bce"))), f"h{width}")
                 for width in (128, 800)),
           "Flam-Shepherd, Figures 6-7 (reconstructions only; no numbers)",
           (*(Claim(f"h{w}.bp.test_error < min(h{w}.dfa.test_error, "
                    f"h{w}.general_strategy_s1.test_error, h{w}.general_strategy_s2.test_error, "
                    f"h{w}.general_strategy_s3.test_error)", AE_WORSE,
                    "Flam-Shepherd, Experiment 3") for w in (128, 800)),
            *(Claim(f"h{w}.general_strategy_s2.test_error > max("
                    f"h{w}.general_strategy_s1.test_error, h{w}.general_strategy_s3.test_error)",
                    AE_S2, "Flam-Shepherd, Figure 6") for w in (128, 800))),
           SOURCE, (*SETTINGS[:5], SETTINGS[5], SETTINGS[7], SETTINGS[8],
                    Setting("loss", "squared reconstruction error on logistic outputs",
                            "A reconstruction loss  $L(\\hat{\\mathbf{x}},\\mathbf{x}) = "
                            "||\\mathbf{x} - \\hat{\\mathbf{x}}||^2$  was used.")),
           short=SHORT, smoke=SMOKE, figures=("errors.png", "reconstructions.png"),
           cost=cost(30, 100, 25, 4)),
]
