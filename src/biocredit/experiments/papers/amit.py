"""Amit 2019: updated (URFB) and fixed (FRFB) random feedback with the hinge loss and the
saturated linearity; the linear theory. The conv nets are CIFAR's (not installed here)."""

from __future__ import annotations

from ..claims import Claim
from ..preset import SHORT_IMAGES, SMOKE_SMALL, Preset, Setting, Step, cost

SOURCE = "amit"
RESULTS = "Amit 2019, Results"
SHALLOW = "For shallow networks URFB performs somewhat better then FRFB but mainly converges " \
    "faster. It never performs as well as BP but is close."
DEEP = "For deeper networks URFB again performs close to BP but FRFB performance degrades " \
    "significantly."
DEPTH_GAIN = "The improvement over fixed feedback weights increases with the depth of the " \
    "network"
SPARSE = "For CIFAR10 the difference between R fixed - FRFB - and R updated - URFB - is " \
    "small, but becomes more significant when connectivity is reduced to 50%"
UNTIED = "With locally connected—untied—layers replacing convolutional layers results are " \
    "slightly worse overall but the relationship between the different methods is maintained."
ALIGN = "We see, however, that the alignment is much stronger for the URFB."
HINGE = "We note that the use of the multi-class hinge loss leads to only a small loss in " \
    "accuracy relative to softmax."
EPSILON = "In the first row, for 3 different runs we show the log-error as a function of " \
    "iteration, and clearly convergence rate increases with ϵ."
CORRELATION = "Moreover, as ϵ increases to 1 the correlations approach higher values at each " \
    "layer."
LINEAR_SETUP = "An input layer of dimension 40, two intermediate layers of dimension 100 and " \
    "an output layer of dimension 10. We assume X = I40"
CONV_METHOD = "We use the saturated linearity σ(x) = min(max(x, −1), 1) and the hinge loss " \
    "function as given in (4). The update is a simple SGD with a fixed time step of 0.1, and " \
    "the network is trained for 1,000 epochs with batch-size of 500."

LINEAR = ("--task", "regress", "--data", "amit-linear", "--model", "mlp:2x100:linear",
          "--optimizer", "sgd", "--lr", "0.5", "--batch-size", "40", "--epochs", "1000",
          "--seeds", "3", "--probe-size", "40", "--tsne-size", "0", "--quiet")
CONV = ("--optimizer", "sgd", "--lr", "0.1", "--batch-size", "500", "--init", "xavier",
        "--epochs", "1000", "--seeds", "3", "--data", "cifar10", "--normalize", "scale",
        "--tsne-size", "0")
HINGE_RULES = ("--rules", "bp,frfb,urfb", "--loss", "hinge")
CONV_SHORT = (*SHORT_IMAGES, "--data", "fashion-mnist", "--normalize", "standardize",
              "--batch-size", "100", "--epochs", "3")
CONV_SETTINGS = (
    Setting("data", "CIFAR-10, inputs scaled to [0, 1]", "We restrict ourselves to image "
            "data."),
    Setting("units, loss, optimizer", "saturated linearity, multi-class hinge loss, SGD 0.1, "
            "batches of 500, 1,000 epochs", CONV_METHOD),
    Setting("initialisation", "Glorot (Xavier) weights and feedback",
            choice="the paper's initialisation is not in our copy"),
    Setting("seeds", "3", choice="the paper shows one run per protocol"),
)
CONV_COST = "CIFAR-10 is not installed here. At 1,000 epochs × 3 seeds, about a GPU-day on " \
    "one H100 for the four nets; months on 2 CPU cores"

PRESETS = [
    Preset("amit-linear", "linear theory: 40-100-100-10 linear net, X = I, BP against "
                          "URFB with ε = 0, 0.25, 0.5, 1 (W starts at 0)",
           (Step(("compare", "--rules", "bp", "--init", "xavier", *LINEAR), "bp"),
            Step(("compare", "--rules", "frfb,urfb:epsilon=0.25,urfb:epsilon=0.5,urfb",
                  "--init", "zero", *LINEAR), "feedback")),
           "Amit 2019, Fig. 12 (log error per iteration and W-R correlation per layer, 3 runs)",
           (Claim("feedback.urfb.train_error_area < feedback.urfb_epsilon_0_5.train_error_area "
                  "< feedback.urfb_epsilon_0_25.train_error_area < "
                  "feedback.frfb.train_error_area", EPSILON, "Amit 2019, Linear theory",
                  note="convergence rate read as the error averaged over the iterations (the "
                       "area under the error curve)"),
            Claim("feedback.urfb.mean_wb_correlation > feedback.urfb_epsilon_0_5."
                  "mean_wb_correlation > feedback.frfb.mean_wb_correlation", CORRELATION,
                  "Amit 2019, Linear theory",
                  note="mean over layers of corr(W_l, R_l) at the end")),
           SOURCE,
           (Setting("network and data", "40-100-100-10 linear, X = I₄₀", LINEAR_SETUP),
            Setting("iterations", "1,000 full-batch steps", "We run 1,000 iterations until all "
                    "5 algorithms have negligible error."),
            Setting("initialisation", "BP: Xavier; FRFB/URFB: W = 0, R random", "For "
                    "comparison we initialize Wi(0) = 0 and initialize Ri(0) randomly."),
            Setting("seeds", "3", "for 3 different runs"),
            Setting("step size", "0.5", choice="the paper integrates differential equations; "
                    "0.5 is a stable Euler step for X = I")),
           short=("--epochs", "60", "--seeds", "2"), smoke=("--epochs", "20"),
           figures=("errors.png", "feedback-correlation.png"),
           cost=cost(15, 1000, 0.1, 0.05)),
    Preset("amit-mlp", "BP, FRFB, URFB, KP, sign symmetry with Amit's hinge loss, saturated "
                       "units, dense and with 50% connectivity (our MLP extension)",
           (Step(("compare", "--model", "mlp:3x800:hardtanh", *HINGE_RULES[2:], "--optimizer",
                  "sgd", "--lr", "0.1", "--batch-size", "100", "--init", "xavier", "--data",
                  "fashion-mnist", "--normalize", "standardize", "--seed", "0", "--tsne-size",
                  "0", "--rules", "bp,frfb,urfb,kp,usf,brsf,frsf"), "dense"),
            Step(("compare", "--model", "mlp:3x800:hardtanh", *HINGE_RULES, "--optimizer",
                  "sgd", "--lr", "0.1", "--batch-size", "100", "--init", "xavier", "--data",
                  "fashion-mnist", "--normalize", "standardize", "--seed", "0", "--tsne-size",
                  "0", "--forward-density", "0.5", "--feedback-density", "0.5"), "sparse")),
           "Amit 2019 runs conv nets only; these MLPs are our extension, and their claims our "
           "own expectations (not counted as the paper's)",
           (Claim("dense.urfb.test_error <= dense.frfb.test_error", "ours: URFB at least as "
                  "good as FRFB in an MLP", "our extension"),
            Claim("dense.urfb.mean_wb_correlation > dense.frfb.mean_wb_correlation",
                  "ours: URFB's feedback aligns more than FRFB's in an MLP", "our extension")),
           SOURCE, (Setting("everything", "as amit-conv, on an MLP and Fashion-MNIST",
                            choice="our extension: the paper runs no MLP"),),
           short=(*SHORT_IMAGES, "--epochs", "3"), budgets=("smoke", "short"), extension=True,
           figures=("errors.png", "feedback-correlation.png")),
    Preset("amit-conv", "Amit's simpnet tied (softmax and hinge BP), untied (locally "
                        "connected) and 50% sparse, and deepnet: BP, FRFB, URFB",
           (Step(("compare", "--model", "amit-simpnet", *HINGE_RULES, *CONV), "simpnet"),
            Step(("compare", "--model", "amit-simpnet", "--rules", "bp", "--loss", "ce", *CONV),
                 "softmax"),
            Step(("compare", "--model", "amit-simpnet-untied", *HINGE_RULES, *CONV), "untied"),
            Step(("compare", "--model", "amit-simpnet", *HINGE_RULES, *CONV,
                  "--forward-density", "0.5", "--feedback-density", "0.5"), "sparse"),
            Step(("compare", "--model", "amit-deepnet", *HINGE_RULES, *CONV), "deepnet")),
           "Amit 2019, Figs. 4-9 (CIFAR; their numbers are lost in our copy)",
           (Claim("simpnet.urfb.test_error <= simpnet.frfb.test_error", SHALLOW, RESULTS),
            Claim("simpnet.bp.test_error <= simpnet.urfb.test_error", SHALLOW, RESULTS),
            Claim("simpnet.urfb.test_error_area < simpnet.frfb.test_error_area", SHALLOW,
                  RESULTS, note="'converges faster': the test error averaged over epochs"),
            Claim("simpnet.bp.test_error - softmax.bp.test_error < 0.02", HINGE, RESULTS,
                  note="'a small loss' read as hinge BP within 2 points of softmax BP"),
            Claim("untied.bp.test_error <= untied.urfb.test_error <= untied.frfb.test_error",
                  UNTIED, RESULTS),
            Claim("sparse.frfb.test_error - sparse.urfb.test_error > "
                  "simpnet.frfb.test_error - simpnet.urfb.test_error", SPARSE, RESULTS),
            Claim("deepnet.frfb.test_error - deepnet.urfb.test_error > "
                  "simpnet.frfb.test_error - simpnet.urfb.test_error", DEPTH_GAIN,
                  "Amit 2019, Discussion"),
            Claim("deepnet.urfb.test_error - deepnet.bp.test_error < "
                  "deepnet.frfb.test_error - deepnet.urfb.test_error", DEEP, RESULTS,
                  note="URFB nearer to BP than to FRFB"),
            Claim("simpnet.urfb.mean_wb_correlation > simpnet.frfb.mean_wb_correlation",
                  ALIGN, RESULTS, note="mean over layers of corr(W_l, R_l)")),
           SOURCE, CONV_SETTINGS, short=CONV_SHORT, smoke=SMOKE_SMALL, budgets=("smoke", "short"),
           cost=CONV_COST,
           figures=("errors.png", "feedback-correlation.png")),
    Preset("amit-deep", "Amit's deepernet (residual SUM layers) and deepnet_s untied: BP, "
                        "FRFB, URFB (hours even at the short budget)",
           (Step(("compare", "--model", "amit-deepernet", *HINGE_RULES, *CONV), "deepernet"),
            Step(("compare", "--model", "amit-deepnet-s-untied", *HINGE_RULES, *CONV),
                 "deepnet_s_untied")),
           "Amit 2019, Figs. 6-9 (CIFAR; lost in our copy). The paper's untied deepnet_s "
           "starts from a conv-trained, frozen first layer; ours trains untied from the start",
           (Claim("deepernet.urfb.test_error - deepernet.bp.test_error < "
                  "deepernet.frfb.test_error - deepernet.urfb.test_error", DEEP, RESULTS,
                  note="URFB nearer to BP than to FRFB"),
            Claim("deepnet_s_untied.bp.test_error <= deepnet_s_untied.urfb.test_error <= "
                  "deepnet_s_untied.frfb.test_error", UNTIED, RESULTS)),
           SOURCE, (*CONV_SETTINGS,
                    Setting("deepnet_s untied", "untied from the start", choice="the paper "
                            "trains 100 epochs with convolutions, then freezes the first layer "
                            "and retrains the rest untied (GPU memory); not built here")),
           short=CONV_SHORT, smoke=SMOKE_SMALL, budgets=("smoke",), cost=CONV_COST,
           figures=("errors.png", "feedback-correlation.png")),
]
