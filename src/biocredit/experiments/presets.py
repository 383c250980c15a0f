"""Each preset is one ``biocredit`` command line with the settings we measured, what the
paper reported for it, and the paper's claims as statements checked against the runs
(:mod:`biocredit.experiments.claims`). ``biocredit reproduce NAME`` runs it and prints the
verdicts; extra arguments are appended (a later flag wins, e.g. ``--epochs 2``)."""

from __future__ import annotations

from dataclasses import dataclass

from .claims import Claim


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    argv: tuple[str, ...]
    paper: str = ""
    claims: tuple[Claim, ...] = ()

    @property
    def out(self) -> str | None:
        """The folder the preset writes (its ``--out``)."""
        argv = list(self.argv)
        return argv[argv.index("--out") + 1] if "--out" in argv else None


NOKLAND = "Nøkland 2016, Results"
SIMILAR = Claim("abs(fa.test_error - bp.test_error) < 0.02 and "
                "abs(dfa.test_error - bp.test_error) < 0.02",
                "The results for all three methods are very similar.", NOKLAND,
                note="'very similar' read as within 2 percentage points of BP")
DKP_BETTER = "We empirically show the mechanisms that allow the improvement in our approach " \
    "over DFA by measuring DKP's ability to better estimate the backpropagation algorithm."
AMIT_SHALLOW = "For shallow networks URFB performs somewhat better then FRFB but mainly " \
    "converges faster. It never performs as well as BP but is close."
AMIT_SPARSE = "For CIFAR10 the difference between R fixed - FRFB - and R updated - URFB - is " \
    "small, but becomes more significant when connectivity is reduced to 50%"
URFB_NOT_WORSE = Claim("urfb.test_error <= frfb.test_error", AMIT_SHALLOW, "Amit 2019, Results")
BP_BEST = Claim("bp.test_error <= urfb.test_error", AMIT_SHALLOW, "Amit 2019, Results")
AMIT_UNTIED = "With locally connected—untied—layers replacing convolutional layers results are " \
    "slightly worse overall but the relationship between the different methods is maintained."
IFA_TRAINS = Claim("ifa.test_error < 0.45",
                   "Starting from a random initialization, the training error reduced to 0%, "
                   "and the test error reduced to 3.9%.", NOKLAND, paper="3.9% test error",
                   note="'trains the 4x100 net' read as a test error below half of chance")
WORST = Claim("general_strategy_s2.test_error >= max(general_strategy_s1.test_error, "
              "general_strategy_s3.test_error)", "Strategy 2 is the worst.",
              "Flam-Shepherd, Figure 6")


FASHION = ("--data", "fashion-mnist", "--seed", "0", "--normalize", "standardize")
AMIT_MLP = ("compare", "--model", "mlp:3x800:hardtanh", "--loss", "hinge", "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "100",
            "--init", "xavier", "--epochs", "10", *FASHION)
AMIT_CONV = ("--rules", "bp,frfb,urfb", "--loss", "hinge", "--optimizer", "sgd", "--lr", "0.1",
             "--batch-size", "100", "--init", "xavier", "--epochs", "2", *FASHION)

_PRESETS = [
    Preset("demo", "BP, FA and DFA on the embedded digits set (make demo)",
           ("compare", "--rules", "bp,fa,dfa", "--model", "mlp:2x200:tanh", "--data", "digits",
            "--epochs", "30", "--out", "runs/demo")),
    Preset("nokland-mlp", "BP, FA and DFA on mlp:2x800:tanh, Fashion-MNIST (Nøkland's MLPs)",
           ("compare", "--rules", "bp,fa,dfa", "--model", "mlp:2x800:tanh", "--epochs", "10",
            "--lr", "3e-4", *FASHION, "--out", "runs/nokland-mlp"),
           "Nøkland 2016, Table 1 (MNIST; its numbers are lost in our copy): \"The results for "
           "all three methods are very similar.\"", (SIMILAR,)),
    Preset("nokland-ifa", "IFA on mlp:4x100:tanh, Fashion-MNIST",
           ("train", "--rule", "ifa", "--model", "mlp:4x100:tanh", "--epochs", "10", "--lr",
            "3e-4", *FASHION, "--out", "runs/ifa-4x100"),
           "Nøkland 2016 (MNIST, 4 hidden layers of 100 neurons): \"the training error reduced "
           "to 0%, and the test error reduced to 3.9%.\"",
           (IFA_TRAINS,)),
    Preset("nokland-tsne", "BP, FA, DFA on mlp:3x400:tanh with the report (t-SNE per layer)",
           ("compare", "--rules", "bp,fa,dfa", "--model", "mlp:3x400:tanh", "--data",
            "fashion-mnist", "--epochs", "5", "--seed", "0", "--out", "runs/report-3x400"),
           "Nøkland 2016, Fig. 3 (t-SNE of each hidden layer of a 3x400 tanh net)"),
    Preset("amit-mlp", "BP, FRFB, URFB, KP, sign symmetry with Amit's hinge loss, saturated units",
           (*AMIT_MLP, "--rules", "bp,frfb,urfb,kp,usf,brsf,frsf", "--out", "runs/amit-dense"),
           "URFB close to BP, FRFB worse; URFB's W-R correlations much higher (Amit 2019)",
           (URFB_NOT_WORSE, BP_BEST)),
    Preset("amit-mlp-sparse", "amit-mlp with 50% forward and 50% feedback connectivity",
           (*AMIT_MLP, "--rules", "bp,frfb,urfb,kp,usf", "--forward-density", "0.5",
            "--feedback-density", "0.5", "--out", "runs/amit-sparse"),
           "the FRFB-URFB gap widens at 50% connectivity (Amit 2019)",
           (Claim("urfb.test_error < frfb.test_error", AMIT_SPARSE, "Amit 2019, Results"),)),
    Preset("dkp-mlp", "DFA against DKP on mlp:2x800:tanh, Fashion-MNIST",
           ("compare", "--rules", "dfa,dkp", "--model", "mlp:2x800:tanh", "--epochs", "10",
            "--lr", "3e-4", *FASHION, "--out", "runs/dkp-vs-dfa"),
           "DKP estimates the BP update better than DFA (Webster et al.)",
           (Claim("dkp.mean_angle_deg < dfa.mean_angle_deg", DKP_BETTER,
                  "Webster et al., Introduction"),)),
    Preset("dkp-convnet", "BP, FA, DFA, DKP on dkp-convnet, Fashion-MNIST",
           ("compare", "--rules", "bp,fa,dfa,dkp", "--model", "dkp-convnet", "--epochs", "5",
            "--batch-size", "128", *FASHION, "--out", "runs/dkp-convnet"),
           "DKP below DFA's test error on conv nets (Webster et al.)",
           (Claim("dkp.test_error < dfa.test_error", DKP_BETTER, "Webster et al., Introduction"),
            Claim("dkp.mean_angle_deg < dfa.mean_angle_deg", DKP_BETTER,
                  "Webster et al., Introduction"))),
    Preset("amit-simpnet", "Amit's simpnet, hinge loss: BP, FRFB, URFB (tied)",
           ("compare", "--model", "amit-simpnet", *AMIT_CONV, "--out", "runs/amit-simpnet"),
           claims=(URFB_NOT_WORSE, BP_BEST)),
    Preset("amit-simpnet-untied", "Amit's simpnet with locally connected layers",
           ("compare", "--model", "amit-simpnet-untied", *AMIT_CONV,
            "--out", "runs/amit-simpnet-untied"),
           claims=(Claim("urfb.test_error <= frfb.test_error", AMIT_UNTIED, "Amit 2019, Results"),
                   Claim("bp.test_error <= urfb.test_error", AMIT_UNTIED, "Amit 2019, Results"))),
    Preset("flam-shepherd-strategies", "s1-s3 with output and auxiliary errors, DFA and BP",
           ("compare", "--rules",
            "bp,dfa,general:strategy=s1,general:strategy=s2,general:strategy=s3,"
            "dfa:aux_errors=true,general:strategy=s1:aux_errors=true,"
            "general:strategy=s2:aux_errors=true,general:strategy=s3:aux_errors=true",
            "--model", "mlp:2x800:tanh", "--epochs", "5", "--lr", "3e-4", *FASHION,
            "--out", "runs/general")),
    Preset("flam-shepherd-autoencoders", "784-128-128-784 autoencoders: BP, DFA, s1-s3",
           ("compare", "--task", "autoencoder", "--rules",
            "bp,dfa,general:strategy=s1,general:strategy=s2,general:strategy=s3",
            "--model", "mlp:2x128:tanh", "--data", "fashion-mnist", "--epochs", "5",
            "--seed", "0", "--out", "runs/autoencoder"),
           claims=(WORST,)),
]
PRESETS = {p.name: p for p in _PRESETS}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return PRESETS[name]
