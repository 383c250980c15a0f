"""Nøkland 2016: direct feedback alignment (DFA) and indirect feedback alignment (IFA).
Table 1's numbers are lost in our copy; the abstract's 1.45 % and the IFA run's 3.9 % are not."""

from __future__ import annotations

from ..claims import Claim
from ..preset import SHORT_IMAGES, SMOKE_SMALL, Preset, Setting, Step, cost, one

SOURCE = "nokland"
RESULTS = "Nøkland 2016, Results"
SIMILAR = "The results for all three methods are very similar."
DEEPEST = "Only DFA was able to train the deepest network with the simple initialization used."
FIT = "The experimental results indicate that DFA is able to fit the training data equally " \
    "good as BP and FA."
DESCENT = "Theorem 1 suggests that a large class of asymmetric feedback paths can provide a " \
    "descending gradient direction for a hidden layer"
REGULARIZE = "Adding regularization seems to help more for DFA than for FA."
CONV = "For the convolutional network, BP is clearly the best performer."
FROZEN = "The first hidden layer was fixed to random weights, but the 2 hidden layers above " \
    "were trained with BP for 50 epochs. At this point, the training error was about 5%."
UNFREEZE_BP = "Then, the first hidden layer was unfreezed and training continued with BP. The " \
    "training error decreased to 0% in about 50 epochs."
UNFREEZE_DFA = "As expected because of different update directions, the error first " \
    "increased, then decreased to 0% after about 50 epochs."
DROPOUT = "If combined with dropout, the method achieves 1.45% error on the permutation " \
    "invariant MNIST task."
IFA = "Starting from a random initialization, the training error reduced to 0%, and the test " \
    "error reduced to 3.9%."

# The paper's common settings, each with its sentence.
SETUP = "The experiments were performed with the binary cross-entropy loss and optimized with " \
    "RMSprop [14]."
LR = "For all other experiments, the learning rate was roughly optimized for BP and then used " \
    "for all methods."
STOP = "Training was stopped when training error reached 0.01% or the number of epochs " \
    "reached 300."
BATCH = "A mini-batch size of 64 was used. No momentum or weight decay was used."
SCALE = "The input data was scaled to be between 0 and 1, but for the convolutional networks, " \
    "the data was whitened."
INIT = "For FA and DFA, the weights and biases were initialized to zero, except for the ReLU " \
    "networks. For BP and/or ReLU, the initial weights and biases were sampled from a " \
    "uniform distribution in the range ."
FEEDBACK = "The random feedback weights were sampled from a uniform distribution in the range ."
COMMON_SETTINGS = (
    Setting("data", "MNIST, 60,000 training and 10,000 test images", "Several feed-forward "
            "networks were trained on MNIST and CIFAR to compare the performance of DFA with "
            "FA and BP."),
    Setting("loss and optimizer", "binary cross-entropy on logistic outputs, RMSprop", SETUP),
    Setting("learning rate", "3·10⁻⁴, constant, the same for every rule",
            choice="the paper's value (\"roughly optimized for BP\") is not given; 3·10⁻⁴ is "
                   "a common RMSprop rate for MLPs (the sensitivity step of nokland-depth runs "
                   "10⁻⁴); sentence: " + LR),
    Setting("batch size, momentum, weight decay", "64, none, none", BATCH),
    Setting("inputs", "pixels scaled to [0, 1]", SCALE),
    Setting("stopping rule", "train error ≤ 0.01 % or 300 epochs", STOP),
    Setting("initialisation", "FA, DFA: zero weights and biases (tanh, logistic); BP and ReLU "
            "nets: uniform ±1/√fan_in", INIT),
    Setting("uniform range", "±1/√fan_in (weights and feedback)",
            choice="the range is lost in our copy (\"in the range .\"); ±1/√fan_in is the "
                   "usual one"),
    Setting("feedback", "B uniform ±1/√C", FEEDBACK),
    Setting("seeds", "3", choice="the paper reports one run per cell; 3 seeds give every "
            "comparison a standard error"),
)


def nokland_run(lr: str = "3e-4", stop: str = "0.0001", epochs: str = "300",
                tsne: bool = False) -> tuple[str, ...]:
    """The flags of the paper's MNIST runs (:data:`COMMON_SETTINGS`); ``tsne``: keep
    compare's t-SNE figures (train has none)."""
    return ("--loss", "bce", "--optimizer", "rmsprop", "--lr", lr, "--batch-size", "64",
            "--data", "mnist", "--normalize", "scale", "--stop-train-error", stop, "--epochs",
            epochs, "--seeds", "3", *(() if tsne else ("--tsne-size", "0")))


RUN = nokland_run()
TRAIN_RUN = nokland_run(tsne=True)
SHORT = (*SHORT_IMAGES, "--epochs", "3")


def steps(model: str, *extra: str, relu: bool = False, run=RUN) -> tuple[Step, ...]:
    """BP from a uniform initialization, FA and DFA from zero (uniform for ReLU nets)."""
    if relu:
        return (Step(("compare", "--rules", "bp,fa,dfa", "--model", model, "--init", "uniform",
                      *run, *extra), "uniform"),)
    return (Step(("compare", "--rules", "bp", "--model", model, "--init", "uniform", *run,
                  *extra), "uniform"),
            Step(("compare", "--rules", "fa,dfa", "--model", model, "--init", "zero", *run,
                  *extra), "zero"))


def named(prefix: str, found: tuple[Step, ...]) -> tuple[Step, ...]:
    return tuple(Step(s.argv, f"{prefix}_{s.name}" if s.name else prefix) for s in found)


def similar(bp: str, fa: str, dfa: str) -> Claim:
    """'very similar' for runs named ``bp``, ``fa``, ``dfa`` (steps included)."""
    return Claim(f"abs({fa}.test_error - {bp}.test_error) < 0.005 and "
                 f"abs({dfa}.test_error - {bp}.test_error) < 0.005", SIMILAR, RESULTS,
                 note="'very similar' read as FA's and DFA's test errors within half a "
                      "point of BP's (MNIST errors are 1.5-3 %)")


DESCENT_CLAIM = Claim("zero.fa.mean_angle_deg < 90 and zero.dfa.mean_angle_deg < 90", DESCENT,
                      "Nøkland 2016, Theory",
                      note="the angle between each rule's weight update and BP's, on a probe "
                           "batch")
TABLE1 = "Nøkland 2016, Table 1 (its numbers are lost in our copy)"
DROPOUT_FLAGS = ("--dropout-input", "0.2", "--dropout-hidden", "0.5")
DROPOUT_SETTING = Setting(
    "dropout", "0.2 of the inputs, 0.5 of the hidden units; constant learning rate, the "
    "stopping rule above", choice="the rates are lost in our copy (\"a dropout probability of "
    "was used in the input layer and elsewhere\"): 0.2/0.5 are the dropout paper's; the "
    "paper's decayed, validation-chosen learning rate for the dropout nets is not given")

PRESETS = [
    Preset("nokland-7x240", "Table 1, 7x240 tanh: BP (uniform init) and FA, DFA (zero init)",
           steps("mlp:7x240:tanh"), TABLE1,
           (similar("uniform.bp", "zero.fa", "zero.dfa"), DESCENT_CLAIM), SOURCE,
           COMMON_SETTINGS, short=SHORT,
           cost=cost(9, 300, 10, 1.5, "a run stops earlier at 0.01 % train error")),
    Preset("nokland-100x240", "Table 1, 100x240 tanh: only DFA trains from the simple init",
           steps("mlp:100x240:tanh"), TABLE1,
           (Claim("zero.dfa.train_error < min(uniform.bp.train_error, zero.fa.train_error) "
                  "- 0.1", DEEPEST, RESULTS,
                  note="'only DFA trains' read as DFA's train error at least 10 points below "
                       "BP's and FA's"),),
           SOURCE, COMMON_SETTINGS, short=(*SHORT, "--epochs", "2"),
           smoke=SMOKE_SMALL,
           cost=cost(9, 300, 50, 3, "BP and FA, which do not train, run all 300")),
    Preset("nokland-depth", "Table 1, 1x800 to 4x800 tanh: BP, FA, DFA at every depth, and "
                            "the 2x800 net at a third of the learning rate",
           (*(s for depth in (1, 2, 3, 4) for s in named(f"d{depth}",
                                                          steps(f"mlp:{depth}x800:tanh"))),
            *named("lr1e_4", steps("mlp:2x800:tanh", run=nokland_run(lr="1e-4")))),
           TABLE1,
           (similar("d1_uniform.bp", "d1_zero.fa", "d1_zero.dfa"),
            similar("d2_uniform.bp", "d2_zero.fa", "d2_zero.dfa"),
            similar("d3_uniform.bp", "d3_zero.fa", "d3_zero.dfa"),
            similar("d4_uniform.bp", "d4_zero.fa", "d4_zero.dfa"),
            Claim("d4_zero.dfa.train_error <= max(d4_uniform.bp.train_error, "
                  "d4_zero.fa.train_error) + 0.001", FIT, "Nøkland 2016, Discussion",
                  note="'equally good' read as DFA's train error within 0.1 point of the "
                       "worse of BP and FA"),
            similar("lr1e_4_uniform.bp", "lr1e_4_zero.fa", "lr1e_4_zero.dfa")),
           SOURCE, COMMON_SETTINGS, short=SHORT,
           cost=cost(45, 300, 10, 1.5, "a run stops earlier at 0.01 % train error")),
    Preset("nokland-activations", "Table 1, 2x800 logistic and 2x800 ReLU: BP, FA, DFA",
           (*named("logistic", steps("mlp:2x800:logistic")),
            *named("relu", steps("mlp:2x800:relu", relu=True))),
           f"{TABLE1}; ReLU nets start from a uniform init",
           (similar("logistic_uniform.bp", "logistic_zero.fa", "logistic_zero.dfa"),
            similar("relu_uniform.bp", "relu_uniform.fa", "relu_uniform.dfa")),
           SOURCE, COMMON_SETTINGS, short=SHORT,
           cost=cost(18, 300, 10, 1.5, "a run stops earlier at 0.01 % train error")),
    Preset("nokland-regularized",
           "Table 1, 2x800 tanh plain, with dropout and with adversarial training: BP, FA, DFA",
           (*named("plain", steps("mlp:2x800:tanh")),
            *named("dropout", steps("mlp:2x800:tanh", *DROPOUT_FLAGS)),
            *named("adversarial", steps("mlp:2x800:tanh", "--adversarial", "0.1"))),
           f"{TABLE1}; the abstract: DFA with dropout 1.45 %",
           (similar("dropout_uniform.bp", "dropout_zero.fa", "dropout_zero.dfa"),
            similar("adversarial_uniform.bp", "adversarial_zero.fa", "adversarial_zero.dfa"),
            Claim("plain_zero.dfa.test_error - dropout_zero.dfa.test_error > "
                  "plain_zero.fa.test_error - dropout_zero.fa.test_error",
                  REGULARIZE, "Nøkland 2016, Discussion",
                  note="dropout lowers DFA's test error by more than FA's"),
            Claim("near(dropout_zero.dfa.test_error, 0.0145, 0.003)", DROPOUT,
                  "Nøkland 2016, Abstract", paper="1.45 %",
                  note="within 0.3 points or two standard deviations over seeds")),
           SOURCE, (*COMMON_SETTINGS, DROPOUT_SETTING,
                    Setting("adversarial ε", "0.1 (fast gradient sign)",
                            choice="ε is lost in our copy; 0.1 on [0, 1] pixels is Goodfellow "
                                   "et al.'s MNIST value")),
           short=SHORT,
           cost=cost(27, 300, 12, 1.5, "a run stops earlier at 0.01 % train error; adversarial runs take two passes a step")),
    Preset("nokland-3x50", "3x50 tanh: first layer frozen at random while BP trains the rest "
                           "for 50 epochs, then unfrozen and trained with BP, and again with "
                           "DFA in the unfrozen layer only (BP above it)",
           (Step(("train", "--rule", "bp", "--model", "mlp:3x50:tanh", "--init", "uniform",
                  "--freeze", "blocks.0", *nokland_run(stop="0", epochs="50", tsne=True)),
                 "frozen"),
            Step(("train", "--rule", "bp", "--model", "mlp:3x50:tanh",
                  "--init-from", "{root}/frozen/seed-{seed}/model.pt", *TRAIN_RUN), "unfrozen_bp"),
            Step(("train", "--rule", "dfa", "--model", "mlp:3x50:tanh", "--taps", "blocks.0",
                  "--init-from", "{root}/frozen/seed-{seed}/model.pt", *TRAIN_RUN),
                 "unfrozen_dfa")),
           "Nøkland 2016, Results and Fig. 2 (left): about 5 % train error after 50 frozen "
           "epochs, 0 % after about 50 more with BP, and with DFA",
           (Claim("near(frozen.bp.train_error, 0.05, 0.02)", FROZEN, RESULTS,
                  paper="about 5 %", note="'about' read as within 2 points"),
            Claim("unfrozen_bp.bp.train_error <= 0.0001 and "
                  "unfrozen_bp.bp.epochs_completed <= 100", UNFREEZE_BP, RESULTS,
                  paper="0 % in about 50 epochs",
                  note="'0 %' read as the stopping rule's 0.01 %, 'about 50' as at most 100"),
            Claim("unfrozen_dfa.dfa.first_train_error > frozen.bp.train_error", UNFREEZE_DFA,
                  RESULTS, note="the train error after the first unfrozen epoch above the "
                                "frozen net's"),
            Claim("unfrozen_dfa.dfa.train_error <= 0.0001 and "
                  "unfrozen_dfa.dfa.epochs_completed <= 100", UNFREEZE_DFA, RESULTS,
                  paper="0 % after about 50 epochs")),
           SOURCE, (*COMMON_SETTINGS,
                    Setting("frozen phase", "50 epochs of BP, first layer fixed at its random "
                            "(uniform) initialisation", FROZEN),
                    Setting("DFA phase", "a DFA tap after the first hidden layer only: DFA "
                            "trains it, BP the layers above", "The last step was repeated, "
                            "but this time the unfreezed layer was trained with DFA.")),
           short=(*SHORT_IMAGES, "--epochs", "10", "--seeds", "3"), smoke=("--seeds", "3"),
           figures=("errors.png",),
           cost=cost(9, 300, 3, 1.2, "the unfrozen runs stop at 0.01 % train error")),
    Preset("nokland-conv", "the CIFAR-10 conv net with the error injected after max-pooling: "
                           "BP, FA, DFA",
           one("compare", "--rules", "bp,fa,dfa", "--model", "nokland-conv", "--inject-at",
               "output", "--loss", "bce", "--optimizer", "rmsprop", "--lr", "3e-4",
               "--batch-size", "64", "--data", "cifar10", "--normalize", "standardize",
               "--stop-train-error", "0.0001", "--epochs", "300", "--seeds", "3",
               "--tsne-size", "0"),
           "Nøkland 2016, Tables 2-3 (CIFAR; their numbers are lost in our copy)",
           (Claim("bp.test_error < min(fa.test_error, dfa.test_error)", CONV, RESULTS),),
           SOURCE, (Setting("data", "CIFAR-10", "The results on CIFAR-10 are summarized in "
                            "Table 2."),
                    Setting("injection", "after max-pooling", "For the convolutional network "
                            "the error was injected after the max-pooling layers."),
                    Setting("inputs", "standardised per channel", choice="the paper whitens "
                            "(\"the data was whitened\"); per-channel standardisation is the "
                            "library's nearest"),
                    *COMMON_SETTINGS[1:4], COMMON_SETTINGS[5], COMMON_SETTINGS[-1]),
           short=(*SHORT_IMAGES, "--data", "fashion-mnist", "--train-size", "3000",
                  "--epochs", "2"),
           budgets=("smoke", "short"), smoke=SMOKE_SMALL,
           cost="CIFAR-10 is not installed here; 9 runs of up to 300 epochs: about 3 GPU-hours "
                "on one H100, weeks on 2 CPU cores"),
    Preset("nokland-ifa", "IFA on mlp:4x100:tanh, MNIST, from a random initialization",
           one("train", "--rule", "ifa", "--model", "mlp:4x100:tanh", "--init", "uniform",
               *TRAIN_RUN),
           f"Nøkland 2016 (MNIST, 4 hidden layers of 100 neurons): \"{IFA}\"",
           (Claim("near(ifa.test_error, 0.039, 0.003)", IFA, RESULTS, paper="3.9 %",
                  note="within 0.3 points or two standard deviations over seeds"),
            Claim("ifa.train_error <= 0.0001", IFA, RESULTS, paper="0 %",
                  note="'0 %' read as the stopping rule's 0.01 %")),
           SOURCE, (*COMMON_SETTINGS[:6],
                    Setting("initialisation", "uniform ±1/√fan_in", IFA),
                    COMMON_SETTINGS[-1]),
           short=(*SHORT_IMAGES, "--epochs", "5"), figures=("errors.png",),
           cost=cost(3, 300, 4, 1.5, "stops at 0.01 % train error")),
    Preset("nokland-tsne", "BP, FA, DFA on mlp:3x400:tanh with the report (t-SNE per layer)",
           one("compare", "--rules", "bp,fa,dfa", "--model", "mlp:3x400:tanh", "--init",
               "uniform", *nokland_run(tsne=True)),
           "Nøkland 2016, Fig. 3 (t-SNE of each hidden layer of a 3x400 tanh net)", (),
           SOURCE, (*COMMON_SETTINGS[:6],
                    Setting("initialisation", "uniform ±1/√fan_in for every rule",
                            choice="the figure's initialisation is not stated"),
                    COMMON_SETTINGS[-1]),
           short=SHORT,
           figures=("errors.png", "tsne-bp.png", "tsne-fa.png", "tsne-dfa.png"),
           cost=cost(9, 300, 8, 1.5, "a run stops earlier at 0.01 % train error")),
]
