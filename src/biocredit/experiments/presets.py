"""Each preset is one experiment of a paper: one or more ``biocredit`` command lines (its
steps), what the paper reported, and the paper's claims as statements checked against the
runs (:mod:`biocredit.experiments.claims`). ``biocredit reproduce NAME`` runs it and prints
the verdicts; extra arguments are appended (a later flag wins, e.g. ``--epochs 2``).

A preset runs at a *budget* (:data:`BUDGETS`): ``short`` is the steps as written (what
``docs/REPRODUCTION.md`` shows; the whole suite in about an hour on 2 CPU cores), ``full``
appends the preset's ``full`` flags (the paper's epochs and seeds), ``smoke`` one epoch on a
few hundred examples of :data:`SMOKE_DATA` stand-ins (CI: does every preset run and reach its
claims).
"""

from __future__ import annotations

from dataclasses import dataclass

from .claims import Claim, identifier

BUDGETS = ("smoke", "short", "full")
# At the smoke budget the papers' image sets give way to the synthetic MNIST-shaped set.
SMOKE_DATA = {"fashion-mnist": "synthetic", "mnist": "synthetic"}
SMOKE = ("--epochs", "1", "--train-size", "200", "--test-size", "200", "--seeds", "1",
         "--probe-size", "64", "--quiet")


@dataclass(frozen=True)
class Step:
    """One command line of a preset (without ``--out``); ``name`` names its folder and its
    runs in the claims (``name.rule.metric``); a one-step preset's step has no name.
    ``{root}`` in an argument is the preset's output folder (a later step may read an
    earlier one's checkpoint)."""

    argv: tuple[str, ...]
    name: str = ""

    def flag(self, name: str) -> str | None:
        """The value of the last ``name`` flag, if any."""
        argv = list(self.argv)
        values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
        return values[-1] if values else None

    def rule_specs(self) -> list[str]:
        specs = self.flag("--rules") or self.flag("--rule") or ""
        return [s for s in specs.split(",") if s]

    def run_names(self) -> set[str]:
        """How the claims name this step's runs."""
        prefix = f"{self.name}." if self.name else ""
        return {prefix + identifier(s) for s in self.rule_specs()}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    steps: tuple[Step, ...]
    paper: str = ""                   # what the paper reports for it, in words
    claims: tuple[Claim, ...] = ()
    source: str = ""                  # which paper: a key of PAPERS ("" for the demo)
    full: tuple[str, ...] = ()        # flags appended at the full budget
    smoke: tuple[str, ...] = ()       # flags appended after the generic smoke flags
    figures: tuple[str, ...] = ("errors.png", "alignment.png")  # shown in REPRODUCTION.md
    budgets: tuple[str, ...] = BUDGETS  # where it runs (too slow for short: smoke and full)

    def command(self, step: Step, budget: str, root: str, extra=()) -> list[str]:
        """``step``'s command line at ``budget``, writing under the preset folder ``root``."""
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
        argv = [a.replace("{root}", root) for a in step.argv]
        if budget == "full":
            argv += self.full
        elif budget == "smoke":
            data = step.flag("--data")
            if data in SMOKE_DATA:
                argv += ["--data", SMOKE_DATA[data]]
            argv += SMOKE + (("--no-report",) if argv[0] == "compare" else ()) + self.smoke
        out = f"{root}/{step.name}" if step.name else root
        return [*argv, *extra, "--out", out]


def one(*argv: str) -> tuple[Step, ...]:
    """The steps of a one-command preset."""
    return (Step(tuple(argv)),)


# -- the papers' sentences (verbatim from our copies) ----------------------------------------
LILLICRAP = "Lillicrap 2016, Fig. 1"
LILLICRAP_LINEAR = "Four algorithms learn to mimic a linear function"
LILLICRAP_USEFUL = "Random feedback weights can deliver useful teaching signals to preceding " \
    "layers of a neural network."
LILLICRAP_FAST = "We demonstrate that this new mechanism performs as quickly and accurately as " \
    "backpropagation on a variety of problems"
LILLICRAP_MNIST = "Feedback alignment solves nonlinear, real-world problems."
LILLICRAP_PSEUDO = "If $W_{0}$ and $W$ start small then $W$ learns to act like a local " \
    "pseudoinverse of $B$."
LILLICRAP_DEEP = "Feedback alignment can train deeper layers via random weights, e.g. " \
    "$B_{1}$ and $B_{2}$."
NOKLAND = "Nøkland 2016, Results"
NOKLAND_SIMILAR = "The results for all three methods are very similar."
NOKLAND_DEEPEST = "Only DFA was able to train the deepest network with the simple " \
    "initialization used."
NOKLAND_FIT = "The experimental results indicate that DFA is able to fit the training data " \
    "equally good as BP and FA."
NOKLAND_DESCENT = "Theorem 1 suggests that a large class of asymmetric feedback paths can " \
    "provide a descending gradient direction for a hidden layer"
NOKLAND_REGULARIZE = "Adding regularization seems to help more for DFA than for FA."
NOKLAND_CONV = "For the convolutional network, BP is clearly the best performer."
NOKLAND_UNFREEZE_BP = "Then, the first hidden layer was unfreezed and training continued with " \
    "BP. The training error decreased to 0% in about 50 epochs."
NOKLAND_UNFREEZE_DFA = "As expected because of different update directions, the error first " \
    "increased, then decreased to 0% after about 50 epochs."
DKP_BETTER = "We empirically show the mechanisms that allow the improvement in our approach " \
    "over DFA by measuring DKP's ability to better estimate the backpropagation algorithm."
DKP_GAP = "The proposed method improves the accuracy of learning by direct feedback " \
    "connections and reduces the gap between parallel training to serial training by means " \
    "of backpropagation."
DFA_CONV_POOR = "However, just as feedback alignment, DFA does not perform well in deep " \
    "convolutional networks."
AMIT = "Amit 2019, Results"
AMIT_SHALLOW = "For shallow networks URFB performs somewhat better then FRFB but mainly " \
    "converges faster. It never performs as well as BP but is close."
AMIT_DEEP = "For deeper networks URFB again performs close to BP but FRFB performance " \
    "degrades significantly."
AMIT_DEPTH_GAIN = "The improvement over fixed feedback weights increases with the depth of " \
    "the network"
AMIT_SPARSE = "For CIFAR10 the difference between R fixed - FRFB - and R updated - URFB - is " \
    "small, but becomes more significant when connectivity is reduced to 50%"
AMIT_UNTIED = "With locally connected—untied—layers replacing convolutional layers results are " \
    "slightly worse overall but the relationship between the different methods is maintained."
AMIT_ALIGN = "We see, however, that the alignment is much stronger for the URFB."
AMIT_EPSILON = "In the first row, for 3 different runs we show the log-error as a function of " \
    "iteration, and clearly convergence rate increases with ϵ."
AMIT_CORRELATION = "Moreover, as ϵ increases to 1 the correlations approach higher values at " \
    "each layer."
FLAM = "Flam-Shepherd, Results"
FLAM_ALMOST = "The results of experiment 1 and 2 show that the proposed error transportation " \
    "configurations are almost as good as DFA and FA"
FLAM_AUX_BEST = "Notice the best result (1.66) is comparable to Nokland's [2]."
FLAM_B = "The last experiment showed that it is possible for learning to occur if the " \
    r"condition  $\mathbf{B}^+\mathbf{B} = I$  for FA and DFA from [2] is ignored."
FLAM_AE_WORSE = "Notice that DFA and strategies 1-3 are of reasonable and similar quality, but " \
    "are all worse that backpropagation."

def similar(bp: str, fa: str, dfa: str) -> Claim:
    """Nøkland's 'very similar' for runs named ``bp``, ``fa``, ``dfa`` (steps included)."""
    return Claim(f"abs({fa}.test_error - {bp}.test_error) < 0.02 and "
                 f"abs({dfa}.test_error - {bp}.test_error) < 0.02", NOKLAND_SIMILAR, NOKLAND,
                 note="'very similar' read as within 2 percentage points of BP")


SIMILAR = similar("bp", "fa", "dfa")


DESCENT = Claim("zero.fa.mean_angle_deg < 90 and zero.dfa.mean_angle_deg < 90",
                NOKLAND_DESCENT, "Nøkland 2016, Theory",
                note="the angle between each rule's weight update and BP's, on a probe batch")
IFA_TRAINS = Claim("ifa.test_error < 0.45",
                   "Starting from a random initialization, the training error reduced to 0%, "
                   "and the test error reduced to 3.9%.", NOKLAND, paper="3.9% test error",
                   note="'trains the 4x100 net' read as a test error below half of chance")
# -- shared settings ---------------------------------------------------------------------------
FASHION = ("--data", "fashion-mnist", "--seed", "0", "--normalize", "standardize")
SHORT = ("--train-size", "10000", "--test-size", "5000")      # the short budget's data
FULL = ("--train-size", "0", "--test-size", "0")               # the whole sets
NO_TSNE = ("--tsne-size", "0")
# Nøkland: binary cross-entropy, RMSprop, batch 64, inputs in [0, 1]; zero initial weights for
# FA and DFA in tanh nets, uniform for BP; stop at 0.01 % train error or 300 epochs.
NOKLAND_RUN = ("--loss", "bce", "--optimizer", "rmsprop", "--lr", "3e-4", "--batch-size", "64",
               "--data", "fashion-mnist", "--normalize", "scale", "--stop-train-error",
               "0.0001", "--epochs", "3", *SHORT)
NOKLAND_FULL = ("--epochs", "300", "--seeds", "3", *FULL)


def nokland_steps(model: str, *extra: str, relu: bool = False) -> tuple[Step, ...]:
    """BP from a uniform initialization, FA and DFA from zero (uniform for ReLU nets)."""
    if relu:
        return (Step(("compare", "--rules", "bp,fa,dfa", "--model", model, "--init", "uniform",
                      *NOKLAND_RUN, *NO_TSNE, *extra), "uniform"),)
    return (Step(("compare", "--rules", "bp", "--model", model, "--init", "uniform",
                  *NOKLAND_RUN, *NO_TSNE, *extra), "uniform"),
            Step(("compare", "--rules", "fa,dfa", "--model", model, "--init", "zero",
                  *NOKLAND_RUN, *NO_TSNE, *extra), "zero"))


AMIT_MLP = ("--model", "mlp:3x800:hardtanh", "--loss", "hinge", "--optimizer", "sgd",
            "--lr", "0.1", "--batch-size", "100", "--init", "xavier", "--epochs", "3", *FASHION,
            *SHORT, *NO_TSNE)
# Amit's conv nets: hinge loss, saturated linearity, SGD 0.1, batch 500, Glorot init.
# (The short budget takes batches of 100, for more steps in its 3 epochs.)
AMIT_CONV = ("--rules", "bp,frfb,urfb", "--loss", "hinge", "--optimizer", "sgd", "--lr", "0.1",
             "--batch-size", "100", "--init", "xavier", "--epochs", "3", *FASHION, *SHORT,
             *NO_TSNE)
AMIT_FULL = ("--epochs", "1000", "--batch-size", "500", "--seeds", "3", *FULL)
FLAM_RUN = ("--epochs", "3", "--lr", "3e-4", *FASHION, *SHORT, *NO_TSNE)
FLAM_FULL = ("--epochs", "100", "--seeds", "3", *FULL)
STRATEGIES = "general:strategy=s1,general:strategy=s2,general:strategy=s3"
AUX_STRATEGIES = ",".join(f"general:strategy=s{i}:aux_errors=true" for i in (1, 2, 3))
LILLICRAP_LINEAR_RUN = ("--task", "regress", "--data", "linear-teacher", "--model",
                        "mlp:1x20:linear", "--optimizer", "sgd", "--lr", "0.002",
                        "--batch-size", "1", "--train-size", "500", "--epochs", "20",
                        "--seeds", "2", *NO_TSNE)
LILLICRAP_NONLINEAR_RUN = ("--task", "regress", "--data", "nonlinear-teacher", "--optimizer",
                           "sgd", "--lr", "0.01", "--batch-size", "10", "--epochs", "10",
                           "--seeds", "3", *NO_TSNE)

_PRESETS = [
    Preset("demo", "BP, FA and DFA on the embedded digits set (make demo)",
           one("compare", "--rules", "bp,fa,dfa", "--model", "mlp:2x200:tanh", "--data",
               "digits", "--epochs", "30")),
    # -- Lillicrap 2016 ------------------------------------------------------------------------
    Preset("lillicrap-linear",
           "30-20-10 linear net learns y = T x: shallow, node perturbation, BP, FA",
           one("compare", "--rules", "shallow,node-perturbation,bp,fa",
               *LILLICRAP_LINEAR_RUN),
           "Lillicrap 2016, Fig. 1d-e: FA learns as fast as BP, far below shallow learning; "
           "its hidden update's angle to BP's falls below 90°",
           (Claim("fa.test_error < shallow.test_error and fa.test_error - bp.test_error < 0.05",
                  LILLICRAP_FAST, "Lillicrap 2016, Abstract",
                  note="test_error is the normalized squared error (NSE) on held-out x; "
                       "'as accurately' read as within 0.05 NSE of BP"),
            Claim("fa.mean_angle_deg < 90", LILLICRAP_USEFUL, LILLICRAP,
                  note="angle between FA's and BP's weight updates of the hidden layer"),
            Claim("node_perturbation.test_error < shallow.test_error", LILLICRAP_LINEAR,
                  LILLICRAP, note="node perturbation also learns the hidden layer, so it ends "
                                  "below shallow learning")),
           source="lillicrap", full=("--epochs", "100", "--seeds", "10")),
    Preset("lillicrap-small-weights",
           "FA on the linear teacher from W0, W ~ U(−ω, ω): the hidden update's angle to "
           "backprop's and to pseudo-backprop's",
           tuple(Step(("compare", "--rules", "fa", "--init-scale", omega,
                       *LILLICRAP_LINEAR_RUN, "--seeds", "1"),
                      "omega_" + omega.replace(".", "_"))
                 for omega in ("0.0001", "0.01", "0.25")),
           "Lillicrap 2016, Fig. 4 (ω from 0.0001 to 0.25; its curves are lost in our copy)",
           (Claim("omega_0_0001.fa.pseudo_angle_deg < omega_0_0001.fa.hidden_angle_deg",
                  LILLICRAP_PSEUDO, "Lillicrap 2016, Fig. 4",
                  note="the angle of FA's hidden update B e to pseudo-backprop's W⁺ e below "
                       "its angle to backprop's Wᵀ e, at the end of training"),
            Claim("omega_0_0001.fa.pseudo_angle_deg < omega_0_25.fa.pseudo_angle_deg",
                  LILLICRAP_PSEUDO, "Lillicrap 2016, Fig. 4",
                  note="the smaller the initial weights, the closer to pseudo-backprop")),
           source="lillicrap", figures=("errors.png",), full=("--epochs", "100")),
    Preset("lillicrap-mnist", "784-1000-10 logistic net: shallow, BP and FA",
           one("compare", "--rules", "shallow,bp,fa", "--model", "mlp:1x1000:logistic",
               "--optimizer", "sgd", "--lr", "0.1", "--epochs", "5", *FASHION, *SHORT,
               *NO_TSNE),
           "Lillicrap 2016, Fig. 2a-b (MNIST; its curves are lost in our copy)",
           (Claim("fa.test_error < shallow.test_error and bp.test_error < shallow.test_error "
                  "and abs(fa.test_error - bp.test_error) < 0.02", LILLICRAP_MNIST,
                  "Lillicrap 2016, Fig. 2", note="'FA ≈ BP' read as within 2 points"),
            Claim("fa.mean_angle_deg < 90", LILLICRAP_MNIST, "Lillicrap 2016, Fig. 2b")),
           source="lillicrap", full=("--epochs", "100", "--seeds", "3", *FULL)),
    Preset("lillicrap-nonlinear",
           "nonlinear function approximation: a 3-layer net (shallow, BP, FA) and a 4-layer "
           "net (BP, FA), averaged over trials",
           (Step(("compare", "--rules", "shallow,bp,fa", "--model", "mlp:1x20:tanh",
                  *LILLICRAP_NONLINEAR_RUN), "three_layer"),
            Step(("compare", "--rules", "bp,fa", "--model", "mlp:2x20:tanh",
                  *LILLICRAP_NONLINEAR_RUN), "four_layer")),
           "Lillicrap 2016, Fig. 2c-d: NSE curves, each an average over 20 trials",
           (Claim("three_layer.fa.test_error < three_layer.shallow.test_error",
                  LILLICRAP_MNIST, "Lillicrap 2016, Fig. 2c"),
            Claim("four_layer.fa.test_error < three_layer.shallow.test_error and "
                  "four_layer.fa.mean_angle_deg < 90", LILLICRAP_DEEP,
                  "Lillicrap 2016, Fig. 2d",
                  note="the deeper FA net learns (below shallow learning) with both hidden "
                       "layers' updates within 90° of BP's")),
           source="lillicrap", full=("--epochs", "50", "--seeds", "20")),
    # -- Nøkland 2016 --------------------------------------------------------------------------
    Preset("nokland-mlp", "BP, FA and DFA on mlp:2x800:tanh, Fashion-MNIST (our Adam settings)",
           one("compare", "--rules", "bp,fa,dfa", "--model", "mlp:2x800:tanh", "--epochs", "5",
               "--lr", "3e-4", *FASHION, *SHORT, *NO_TSNE),
           "Nøkland 2016, Table 1 (MNIST; its numbers are lost in our copy)", (SIMILAR,),
           source="nokland", full=("--epochs", "50", "--seeds", "3", *FULL)),
    Preset("nokland-7x240", "Table 1, 7x240 tanh: BP (uniform init) and FA, DFA (zero init)",
           nokland_steps("mlp:7x240:tanh"), "Nøkland 2016, Table 1 (lost in our copy)",
           (similar("uniform.bp", "zero.fa", "zero.dfa"), DESCENT),
           source="nokland", full=NOKLAND_FULL),
    Preset("nokland-100x240", "Table 1, 100x240 tanh: only DFA trains from the simple init",
           nokland_steps("mlp:100x240:tanh", "--epochs", "2"),
           "Nøkland 2016, Table 1 (lost in our copy)",
           (Claim("zero.dfa.train_error < min(uniform.bp.train_error, zero.fa.train_error) "
                  "- 0.1", NOKLAND_DEEPEST, NOKLAND,
                  note="'only DFA trains' read as DFA's train error at least 10 points below "
                       "BP's and FA's"),),
           source="nokland", full=NOKLAND_FULL),
    Preset("nokland-depth", "Table 1, 1x800 to 4x800 tanh: BP, FA, DFA at every depth",
           tuple(Step(step.argv, f"d{depth}_{step.name}") for depth in (1, 2, 3, 4)
                 for step in nokland_steps(f"mlp:{depth}x800:tanh")),
           "Nøkland 2016, Table 1 (lost in our copy)",
           (similar("d1_uniform.bp", "d1_zero.fa", "d1_zero.dfa"),
            similar("d4_uniform.bp", "d4_zero.fa", "d4_zero.dfa"),
            Claim("d4_zero.dfa.train_error <= max(d4_uniform.bp.train_error, "
                  "d4_zero.fa.train_error) + 0.01", NOKLAND_FIT, "Nøkland 2016, Discussion",
                  note="'equally good' read as within 1 point of the worse of BP and FA")),
           source="nokland", full=NOKLAND_FULL),
    Preset("nokland-activations", "Table 1, 2x800 logistic and 2x800 ReLU: BP, FA, DFA",
           (*(Step(s.argv, f"logistic_{s.name}") for s in nokland_steps("mlp:2x800:logistic")),
            *(Step(s.argv, "relu") for s in nokland_steps("mlp:2x800:relu", relu=True))),
           "Nøkland 2016, Table 1 (lost in our copy); ReLU nets start from a uniform init",
           (similar("logistic_uniform.bp", "logistic_zero.fa", "logistic_zero.dfa"),
            similar("relu.bp", "relu.fa", "relu.dfa")),
           source="nokland", full=NOKLAND_FULL),
    Preset("nokland-regularized",
           "Table 1, 2x800 tanh with dropout and with adversarial training: BP, FA, DFA",
           (*(Step(s.argv, f"plain_{s.name}") for s in nokland_steps("mlp:2x800:tanh")),
            *(Step(s.argv, f"dropout_{s.name}") for s in nokland_steps(
                "mlp:2x800:tanh", "--dropout-input", "0.2", "--dropout-hidden", "0.5")),
            *(Step(s.argv, f"adversarial_{s.name}") for s in nokland_steps(
                "mlp:2x800:tanh", "--adversarial", "0.1"))),
           "Nøkland 2016, Table 1 (lost in our copy; so are its dropout rates and ε: ours are "
           "0.2 input / 0.5 hidden dropout, ε = 0.1)",
           (similar("dropout_uniform.bp", "dropout_zero.fa", "dropout_zero.dfa"),
            similar("adversarial_uniform.bp", "adversarial_zero.fa", "adversarial_zero.dfa"),
            Claim("plain_zero.dfa.test_error - dropout_zero.dfa.test_error > "
                  "plain_zero.fa.test_error - dropout_zero.fa.test_error",
                  NOKLAND_REGULARIZE, "Nøkland 2016, Discussion",
                  note="dropout lowers DFA's test error by more than FA's")),
           source="nokland", full=NOKLAND_FULL),
    Preset("nokland-3x50", "3x50 tanh: first layer frozen at random while BP trains the rest, "
                           "then unfrozen and trained with BP, and again with DFA",
           (Step(("train", "--rule", "bp", "--model", "mlp:3x50:tanh", "--freeze", "blocks.0",
                  *NOKLAND_RUN, "--epochs", "10"), "frozen"),
            Step(("train", "--rule", "bp", "--model", "mlp:3x50:tanh",
                  "--init-from", "{root}/frozen/model.pt", *NOKLAND_RUN, "--epochs", "10"),
                 "unfrozen_bp"),
            Step(("train", "--rule", "dfa", "--model", "mlp:3x50:tanh",
                  "--init-from", "{root}/frozen/model.pt", *NOKLAND_RUN, "--epochs", "10"),
                 "unfrozen_dfa")),
           "Nøkland 2016, Results (MNIST: about 5% train error after 50 frozen epochs, 0% "
           "after about 50 more with BP, and with DFA)",
           (Claim("unfrozen_bp.bp.train_error < frozen.bp.train_error", NOKLAND_UNFREEZE_BP,
                  NOKLAND, paper="5% -> 0% in about 50 epochs",
                  note="on Fashion-MNIST and fewer epochs we check the direction: unfreezing "
                       "lowers the train error"),
            Claim("unfrozen_dfa.dfa.train_error < frozen.bp.train_error",
                  NOKLAND_UNFREEZE_DFA, NOKLAND, paper="0% after about 50 epochs",
                  note="DFA trains every layer of the unfrozen net (our reading)")),
           source="nokland",
           figures=("errors.png",), full=("--epochs", "50", "--seeds", "3", *FULL)),
    Preset("nokland-conv", "the conv net with the error injected after max-pooling: BP, FA, DFA",
           one("compare", "--rules", "bp,fa,dfa", "--model", "nokland-conv", "--inject-at",
               "output", "--loss", "bce", "--optimizer", "rmsprop", "--lr", "3e-4",
               "--epochs", "2", *FASHION, *SHORT, "--train-size", "3000", *NO_TSNE),
           "Nøkland 2016, Tables 2-3 (CIFAR; lost in our copy)",
           (Claim("bp.test_error < min(fa.test_error, dfa.test_error)", NOKLAND_CONV, NOKLAND),),
           source="nokland", full=NOKLAND_FULL),
    Preset("nokland-ifa", "IFA on mlp:4x100:tanh, Fashion-MNIST",
           one("train", "--rule", "ifa", "--model", "mlp:4x100:tanh", "--epochs", "5", "--lr",
               "3e-4", *FASHION, *SHORT),
           "Nøkland 2016 (MNIST, 4 hidden layers of 100 neurons): \"the training error reduced "
           "to 0%, and the test error reduced to 3.9%.\"",
           (IFA_TRAINS,), source="nokland", figures=("errors.png",),
           full=("--epochs", "50", "--seeds", "3", *FULL)),
    Preset("nokland-tsne", "BP, FA, DFA on mlp:3x400:tanh with the report (t-SNE per layer)",
           one("compare", "--rules", "bp,fa,dfa", "--model", "mlp:3x400:tanh", "--data",
               "fashion-mnist", "--epochs", "3", "--seed", "0", *SHORT),
           "Nøkland 2016, Fig. 3 (t-SNE of each hidden layer of a 3x400 tanh net)",
           source="nokland", figures=("errors.png", "tsne-bp.png", "tsne-fa.png",
                                      "tsne-dfa.png"),
           full=("--epochs", "50", *FULL)),
    # -- Flam-Shepherd ---------------------------------------------------------------------------
    Preset("flam-shepherd-strategies", "s1-s3 with output and auxiliary errors, DFA and BP",
           one("compare", "--rules",
               f"bp,dfa,{STRATEGIES},dfa:aux_errors=true,general:strategy=s1:aux_errors=true,"
               "general:strategy=s2:aux_errors=true,general:strategy=s3:aux_errors=true",
               "--model", "mlp:2x800:tanh", *FLAM_RUN),
           "Flam-Shepherd, Tables 2-3 (MNIST, 2x800 tanh: s1/s2/s3 1.96/1.95/2.03 % with the "
           "output error, 1.66/1.86/1.87 % with auxiliary errors)",
           (Claim("max(general_strategy_s1.test_error, general_strategy_s2.test_error, "
                  "general_strategy_s3.test_error) < dfa.test_error + 0.01", FLAM_ALMOST, FLAM,
                  paper="1.96 / 1.95 / 2.03 %",
                  note="'almost as good' read as within 1 point of DFA"),
            Claim("general_strategy_s1_aux_errors_true.test_error <= min("
                  "general_strategy_s2_aux_errors_true.test_error, "
                  "general_strategy_s3_aux_errors_true.test_error)", FLAM_AUX_BEST, FLAM,
                  paper="s1 1.66 %, s2 1.86 %, s3 1.87 %",
                  note="the ordering is read off Table 3, not stated in the text")),
           source="flam-shepherd", full=FLAM_FULL),
    Preset("flam-shepherd-grid", "Tables 2-3 as a grid: 200/400/800 units x tanh/ReLU/sigmoid, "
                                 "strategies 1-3",
           tuple(Step(("compare", "--rules", f"{STRATEGIES},{AUX_STRATEGIES}", "--model",
                       f"mlp:2x{width}:{act}", "--optimizer", "sgd", "--lr", "0.01",
                       "--init", "flam-shepherd", "-O", "feedback_scale=0.5", *FLAM_RUN,
                       "--epochs", "2"), f"w{width}_{name}")
                 for act, name in (("tanh", "tanh"), ("relu", "relu"), ("logistic", "sigmoid"))
                 for width in (200, 400, 800)),
           "Flam-Shepherd, Tables 2-3 (MNIST, SGD lr 0.001 for 100 epochs, Xavier weights, "
           "N(0, 1) biases, B ~ U(−1/2, 1/2); the short budget uses lr 0.01 for 2 epochs)",
           tuple(Claim(f"w800_{a}.general_strategy_{s}.test_error < "
                       f"w200_{a}.general_strategy_{s}.test_error",
                       "Networks with 200, 400 and 800 neurons in each layer are considered as "
                       "well as Tanh, Relu and Sigmoid activations.", "Flam-Shepherd, Table 2",
                       note="read off Table 2: 2x800 beats 2x200 in every cell")
                 for a in ("tanh", "relu", "sigmoid") for s in ("s1", "s2", "s3")),
           source="flam-shepherd", figures=("errors.png",),
           full=(*FLAM_FULL, "--lr", "0.001")),
    Preset("flam-shepherd-b1-b7",
           "DFA and FA with Flam-Shepherd's structured feedback B1-B7, 2x800 tanh",
           one("compare", "--rules", ",".join(f"{rule}:feedback_init=b{i}" for rule in
                                              ("dfa", "fa") for i in range(1, 8))
               + ",dfa,fa", "--model", "mlp:2x800:tanh", *FLAM_RUN),
           "Flam-Shepherd, Table 4 (DFA, MNIST: 2.19, 2.32, 2.40, 2.04, 2.22, 2.27, 2.38 % for "
           "B1-B7)",
           (Claim("max(dfa_feedback_init_b1.test_error, dfa_feedback_init_b2.test_error, "
                  "dfa_feedback_init_b3.test_error, dfa_feedback_init_b4.test_error, "
                  "dfa_feedback_init_b5.test_error, dfa_feedback_init_b6.test_error, "
                  "dfa_feedback_init_b7.test_error) < dfa.test_error + 0.02", FLAM_B,
                  "Flam-Shepherd, Table 4", paper="2.04-2.40 %",
                  note="'learning occurs' read as every B within 2 points of random DFA"),
            Claim("max(fa_feedback_init_b1.test_error, fa_feedback_init_b2.test_error, "
                  "fa_feedback_init_b3.test_error, fa_feedback_init_b4.test_error, "
                  "fa_feedback_init_b5.test_error, fa_feedback_init_b6.test_error, "
                  "fa_feedback_init_b7.test_error) < 0.5", FLAM_B, "Flam-Shepherd, Table 4",
                  paper="FA row lost in our copy but for one 4.64 %",
                  note="'learning occurs' read as a test error below 50 % (chance: 90 %)")),
           source="flam-shepherd", full=FLAM_FULL),
    Preset("flam-shepherd-autoencoders",
           "784-128-128-784 and 784-800-800-784 autoencoders: BP, DFA, s1-s3",
           tuple(Step(("compare", "--task", "autoencoder", "--rules", f"bp,dfa,{STRATEGIES}",
                       "--model", f"mlp:2x{width}:tanh", "--data", "fashion-mnist", "--epochs",
                       "3", "--seed", "0", *SHORT, *NO_TSNE), f"h{width}")
                 for width in (128, 800)),
           "Flam-Shepherd, Figure 6-7 (reconstructions only; no numbers)",
           (*(Claim(f"h{w}.bp.test_error < min(h{w}.dfa.test_error, "
                    f"h{w}.general_strategy_s1.test_error, h{w}.general_strategy_s2.test_error, "
                    f"h{w}.general_strategy_s3.test_error)", FLAM_AE_WORSE,
                    "Flam-Shepherd, Experiment 3") for w in (128, 800)),
            *(Claim(f"h{w}.general_strategy_s2.test_error >= max("
                    f"h{w}.general_strategy_s1.test_error, h{w}.general_strategy_s3.test_error)",
                    "Strategy 2 is the worst.", "Flam-Shepherd, Figure 6") for w in (128, 800))),
           source="flam-shepherd", figures=("errors.png", "reconstructions.png"),
           full=FLAM_FULL),
    # -- Amit 2019 -----------------------------------------------------------------------------
    Preset("amit-linear", "linear theory: 40-100-100-10 linear net, X = I, BP against "
                          "URFB with ε = 0, 0.25, 0.5, 1 (W starts at 0)",
           (Step(("compare", "--rules", "bp", "--init", "xavier", "--task", "regress",
                  "--data", "amit-linear", "--model", "mlp:2x100:linear", "--optimizer", "sgd",
                  "--lr", "0.5", "--batch-size", "40", "--epochs", "60", "--seeds", "2",
                  "--probe-size", "40", *NO_TSNE, "--quiet"), "bp"),
            Step(("compare", "--rules", "frfb,urfb:epsilon=0.25,urfb:epsilon=0.5,urfb",
                  "--init", "zero", "--task", "regress", "--data", "amit-linear", "--model",
                  "mlp:2x100:linear", "--optimizer", "sgd", "--lr", "0.5", "--batch-size",
                  "40", "--epochs", "60", "--seeds", "2", "--probe-size", "40", *NO_TSNE,
                  "--quiet"), "feedback")),
           "Amit 2019, Fig. 12 (log error per iteration and W-R correlation per layer, 3 runs)",
           (Claim("feedback.urfb.train_error < feedback.urfb_epsilon_0_5.train_error < "
                  "feedback.urfb_epsilon_0_25.train_error < feedback.frfb.train_error",
                  AMIT_EPSILON, "Amit 2019, Linear theory",
                  note="the error after a fixed number of full-batch iterations (60 at the "
                       "short budget, before any rule has converged) falls as ε grows"),
            Claim("feedback.urfb.mean_wb_correlation > feedback.urfb_epsilon_0_5."
                  "mean_wb_correlation > feedback.frfb.mean_wb_correlation", AMIT_CORRELATION,
                  "Amit 2019, Linear theory",
                  note="mean over layers of corr(W_l, R_l) at the end")),
           source="amit", figures=("errors.png", "feedback-correlation.png"),
           full=("--epochs", "1000", "--seeds", "3"), smoke=("--epochs", "20")),
    Preset("amit-mlp", "BP, FRFB, URFB, KP, sign symmetry with Amit's hinge loss, saturated "
                       "units, dense and with 50% connectivity (our MLP extension)",
           (Step(("compare", *AMIT_MLP, "--rules", "bp,frfb,urfb,kp,usf,brsf,frsf"), "dense"),
            Step(("compare", *AMIT_MLP, "--rules", "bp,frfb,urfb", "--forward-density", "0.5",
                  "--feedback-density", "0.5"), "sparse")),
           "Amit 2019 runs conv nets only; these MLPs are our extension",
           (Claim("dense.urfb.test_error <= dense.frfb.test_error", AMIT_SHALLOW, AMIT),
            Claim("dense.bp.test_error <= dense.urfb.test_error", AMIT_SHALLOW, AMIT),
            Claim("sparse.frfb.test_error - sparse.urfb.test_error > "
                  "dense.frfb.test_error - dense.urfb.test_error", AMIT_SPARSE, AMIT),
            Claim("dense.urfb.mean_wb_correlation > dense.frfb.mean_wb_correlation",
                  AMIT_ALIGN, AMIT, note="mean over layers of corr(W_l, R_l)")),
           source="amit", figures=("errors.png", "feedback-correlation.png"),
           full=("--epochs", "100", "--seeds", "3", *FULL)),
    Preset("amit-conv", "Amit's simpnet tied, untied (locally connected) and 50% sparse, and "
                        "deepnet: BP, FRFB, URFB with the hinge loss",
           (Step(("compare", "--model", "amit-simpnet", *AMIT_CONV), "simpnet"),
            Step(("compare", "--model", "amit-simpnet-untied", *AMIT_CONV), "untied"),
            Step(("compare", "--model", "amit-simpnet", *AMIT_CONV, "--forward-density", "0.5",
                  "--feedback-density", "0.5"), "sparse"),
            Step(("compare", "--model", "amit-deepnet", *AMIT_CONV), "deepnet")),
           "Amit 2019, Figs. 4-9 (CIFAR; lost in our copy)",
           (Claim("simpnet.urfb.test_error <= simpnet.frfb.test_error", AMIT_SHALLOW, AMIT),
            Claim("simpnet.bp.test_error <= simpnet.urfb.test_error", AMIT_SHALLOW, AMIT),
            Claim("untied.bp.test_error <= untied.urfb.test_error <= untied.frfb.test_error",
                  AMIT_UNTIED, AMIT),
            Claim("sparse.frfb.test_error - sparse.urfb.test_error > "
                  "simpnet.frfb.test_error - simpnet.urfb.test_error", AMIT_SPARSE, AMIT),
            Claim("deepnet.frfb.test_error - deepnet.urfb.test_error > "
                  "simpnet.frfb.test_error - simpnet.urfb.test_error", AMIT_DEPTH_GAIN,
                  "Amit 2019, Discussion"),
            Claim("deepnet.urfb.test_error - deepnet.bp.test_error < "
                  "deepnet.frfb.test_error - deepnet.urfb.test_error", AMIT_DEEP, AMIT,
                  note="URFB nearer to BP than to FRFB"),
            Claim("simpnet.urfb.mean_wb_correlation > simpnet.frfb.mean_wb_correlation",
                  AMIT_ALIGN, AMIT, note="mean over layers of corr(W_l, R_l)")),
           source="amit", figures=("errors.png", "feedback-correlation.png"), full=AMIT_FULL),
    Preset("amit-deep", "Amit's deepernet (residual SUM layers) and deepnet_s untied: BP, "
                        "FRFB, URFB (full budget only: hours on 2 CPU cores)",
           (Step(("compare", "--model", "amit-deepernet", *AMIT_CONV), "deepernet"),
            Step(("compare", "--model", "amit-deepnet-s-untied", *AMIT_CONV), "deepnet_s_untied")),
           "Amit 2019, Figs. 6-9 (CIFAR; lost in our copy). The paper's untied deepnet_s "
           "starts from a conv-trained, frozen first layer; ours trains untied from the start",
           (Claim("deepernet.urfb.test_error - deepernet.bp.test_error < "
                  "deepernet.frfb.test_error - deepernet.urfb.test_error", AMIT_DEEP, AMIT,
                  note="URFB nearer to BP than to FRFB"),
            Claim("deepnet_s_untied.bp.test_error <= deepnet_s_untied.urfb.test_error <= "
                  "deepnet_s_untied.frfb.test_error", AMIT_UNTIED, AMIT)),
           source="amit", figures=("errors.png", "feedback-correlation.png"), full=AMIT_FULL,
           budgets=("smoke", "full")),
    # -- Webster (DKP) -------------------------------------------------------------------------
    Preset("dkp-mlp", "DFA against DKP on mlp:2x800:tanh, Fashion-MNIST",
           one("compare", "--rules", "dfa,dkp", "--model", "mlp:2x800:tanh", "--epochs", "5",
               "--lr", "3e-4", *FASHION, *SHORT, *NO_TSNE),
           "DKP estimates the BP update better than DFA (Webster et al.)",
           (Claim("dkp.mean_angle_deg < dfa.mean_angle_deg", DKP_BETTER,
                  "Webster et al., Introduction"),), source="webster",
           full=("--epochs", "50", "--seeds", "3", *FULL)),
    Preset("dkp-convnet", "BP, FA, DFA, DKP on dkp-convnet, Fashion-MNIST, angles per layer",
           one("compare", "--rules", "bp,fa,dfa,dkp", "--model", "dkp-convnet", "--epochs", "2",
               "--batch-size", "128", *FASHION, *SHORT, *NO_TSNE),
           "Webster et al. (per-layer angles and errors lost in our copy)",
           (Claim("dkp.test_error < dfa.test_error", DKP_GAP, "Webster et al., Abstract"),
            Claim("dkp.first_mean_angle_deg < dfa.first_mean_angle_deg and "
                  "dkp.mean_angle_deg < dfa.mean_angle_deg", DKP_BETTER,
                  "Webster et al., Introduction",
                  note="DKP's angle to BP below DFA's after the first epoch and at the end"),
            Claim("dfa.test_error > bp.test_error", DFA_CONV_POOR, "Webster et al., Abstract")),
           source="webster", full=("--epochs", "50", "--seeds", "3", *FULL)),
]
PRESETS = {p.name: p for p in _PRESETS}
PAPERS = {
    "lillicrap": "Lillicrap et al. 2016, Random synaptic feedback weights support error "
                 "backpropagation for deep learning",
    "nokland": "Nøkland 2016, Direct Feedback Alignment Provides Learning in Deep Neural "
               "Networks",
    "flam-shepherd": "Flam-Shepherd et al., General feedback alignment (auxiliary errors "
                     "and autoencoders)",
    "amit": "Amit 2019, Deep learning with asymmetric connections and Hebbian updates",
    "webster": "Webster et al., Direct Kolen-Pollack",
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return PRESETS[name]
