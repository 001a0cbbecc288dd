# ruff: noqa: E501 - a snippet line stays one line: the findings are checked by line
"""The labelled set for `mlgate discover`: code snippets, unsafe and safe variants of every
pattern (aliases, wrappers, partials, evasions, notebooks), each expected finding marked on
its line with ``# expect: MLG6xx``. A snippet without a marker must give none of the
measured rules. Files other than ``snippet.py`` (requirements, lock files) go in ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Case:
    name: str
    code: str  # the snippet; a notebook's cells are separated by lines "# %% cell"
    extra: dict[str, str] = field(default_factory=dict)
    notebook: bool = False


def _c(name: str, code: str, notebook: bool = False, **extra: str) -> Case:
    files = {
        k.replace("__", ".").replace("_", "-") if k != "requirements" else "requirements.txt": v
        for k, v in extra.items()
    }
    return Case(name, code.strip("\n") + "\n", files, notebook)


TORCH = [
    _c("torch-missing", 'import torch\nm = torch.load("m.pt")  # expect: MLG601'),
    _c("torch-false", 'import torch\nm = torch.load("m.pt", weights_only=False)  # expect: MLG601'),
    _c("torch-true", 'import torch\nm = torch.load("m.pt", weights_only=True)'),
    _c("torch-alias", 'import torch as t\nm = t.load(f, map_location="cpu")  # expect: MLG601'),
    _c("torch-from-as", "from torch import load as L\nL(f, weights_only=False)  # expect: MLG601"),
    _c(
        "torch-partial",
        """
import functools, torch
loader = functools.partial(torch.load, weights_only=False)
x = loader("a.pt")  # expect: MLG601
""",
    ),
    _c(
        "torch-partial-safe",
        """
import functools, torch
loader = functools.partial(torch.load, weights_only=True)
x = loader("a.pt")
""",
    ),
    _c(
        "torch-partial-from",
        """
from functools import partial
import torch
p = partial(torch.load, map_location="cpu")
sd = p("a.pt")  # expect: MLG601
""",
    ),
    _c(
        "torch-wrapper",
        """
import torch
def load(path, wo=True):
    return torch.load(path, weights_only=wo)
a = load("a.pt")
b = load("b.pt", wo=False)  # expect: MLG601
""",
    ),
    _c(
        "torch-wrapper-safe",
        """
import torch
def load(path, wo=True):
    return torch.load(path, weights_only=wo)
a = load("a.pt")
b = load("b.pt", wo=True)
""",
    ),
    _c(
        "torch-wrapper-kwargs",
        """
import torch
def load(path, **kw):
    return torch.load(path, **kw)
m = load("a.pt", weights_only=False)  # expect: MLG601
""",
    ),
    _c(
        "torch-wrapper-kwargs-safe",
        """
import torch
def load(path, **kw):
    return torch.load(path, **kw)
m = load("a.pt", weights_only=True, map_location="cpu")
""",
    ),
    _c(
        "torch-wrapper-uncalled",
        """
import torch
def load(path, wo=False):
    return torch.load(path, weights_only=wo)  # expect: MLG601
""",
    ),
    _c(
        "torch-constant",
        "import torch\nWO = False\ntorch.load(f, weights_only=WO)  # expect: MLG601",
    ),
    _c("torch-constant-safe", "import torch\nWO = True\ntorch.load(f, weights_only=WO)"),
    _c("torch-dunder-import", '__import__("torch").load(f, weights_only=False)  # expect: MLG601'),
    _c("torch-getattr", 'import torch\ngetattr(torch, "load")(f)  # expect: MLG601'),
    _c(
        "torch-dict-kwargs",
        'import torch\ntorch.load(f, **{"weights_only": False})  # expect: MLG601',
    ),
    _c("torch-dict-kwargs-safe", 'import torch\ntorch.load(f, **{"weights_only": True})'),
    _c("torch-variable", "import torch\ntorch.load(f, weights_only=args.safe)  # expect: MLG601"),
    _c("torch-other-loaders", "import torch\nm = torch.jit.load(f)\nnet.load_state_dict(sd)"),
    _c(
        "torch-requirement-bypass",
        "import torch\ntorch.load(f, weights_only=True)  # expect: MLG602",
        requirements="numpy\ntorch==2.5.1\n",
    ),
    _c("torch-requirement-fixed", "import torch\ntorch.load(f)\n", requirements="torch>=2.6\n"),
    _c(
        "torch-requirement-old-default",
        "import torch\ntorch.load(f)  # expect: MLG601",
        requirements="torch~=2.4\n",
    ),
    _c(
        "torch-pyproject-bypass",
        "import torch\ntorch.load(f, weights_only=True)  # expect: MLG602",
        pyproject__toml='[project]\nname = "x"\ndependencies = ["torch>=2.0", "numpy"]\n',
    ),
    _c(
        "torch-lock-fixed",
        "import torch\ntorch.load(f, weights_only=True)\n",
        poetry__lock='[[package]]\nname = "torch"\nversion = "2.7.0"\n',
    ),
    _c(
        "torch-conda-bypass",
        "import torch\ntorch.load(f, weights_only=True)  # expect: MLG602",
        environment__yml="name: x\ndependencies:\n  - python=3.11\n  - pytorch=2.5.1=py3.11_0\n",
    ),
]

PICKLE = [
    _c("pickle-load", 'import pickle\nobj = pickle.load(open("m.pkl", "rb"))  # expect: MLG603'),
    _c("pickle-loads", "import pickle\nobj = pickle.loads(blob)  # expect: MLG603"),
    _c(
        "cpickle-fallback",
        """
try:
    import cPickle as pickle
except ImportError:
    import pickle
obj = pickle.loads(blob)  # expect: MLG603
""",
    ),
    _c("pickle-from-as", "from pickle import loads as L\nobj = L(blob)  # expect: MLG603"),
    _c("dill", "import dill\nfn = dill.load(f)  # expect: MLG603"),
    _c("cloudpickle", "import cloudpickle as cp\nfn = cp.loads(blob)  # expect: MLG603"),
    _c("joblib", 'import joblib\nclf = joblib.load("model.joblib")  # expect: MLG603'),
    _c(
        "joblib-sklearn",
        "from sklearn.externals import joblib\nclf = joblib.load(p)  # expect: MLG603",
    ),
    _c("pandas", 'import pandas as pd\ndf = pd.read_pickle("df.pkl")  # expect: MLG603'),
    _c("unpickler", "import pickle\nobj = pickle.Unpickler(f).load()  # expect: MLG603"),
    _c(
        "pickle-write-only",
        'import pickle, joblib\npickle.dump(obj, f)\nb = pickle.dumps(obj)\njoblib.dump(m, "m.joblib")',
    ),
    _c(
        "safe-formats",
        'import json\nfrom safetensors.torch import load_file\nw = load_file("m.safetensors")\nc = json.load(f)',
    ),
    _c(
        "pickle-wrapper",
        """
import pickle
def read(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # expect: MLG603
""",
    ),
    _c(
        "pickle-import-module",
        'import importlib\nimportlib.import_module("pickle").loads(b)  # expect: MLG603',
    ),
    _c("local-load", "import json\ndef load(x):\n    return json.load(x)\ncfg = load(f)"),
    _c(
        "method-load",
        "class Store:\n    def get(self):\n        return self.backend.load(self.key)",
    ),
]

ARRAYS_KERAS = [
    _c(
        "numpy-allow",
        'import numpy as np\na = np.load("a.npy", allow_pickle=True)  # expect: MLG604',
    ),
    _c("numpy-default", 'import numpy as np\na = np.load("a.npy")'),
    _c("numpy-false", 'import numpy as np\na = np.load("a.npy", allow_pickle=False)'),
    _c("numpy-positional", 'import numpy\na = numpy.load("a.npy", None, True)  # expect: MLG604'),
    _c(
        "numpy-variable",
        "import numpy as np\na = np.load(p, allow_pickle=opts.pickle)  # expect: MLG604",
    ),
    _c(
        "keras-unsafe",
        'import keras\nm = keras.models.load_model("m.keras", safe_mode=False)  # expect: MLG605',
    ),
    _c("keras-default", 'import keras\nm = keras.models.load_model("m.keras")'),
    _c(
        "tf-keras-unsafe",
        "import tensorflow as tf\nm = tf.keras.models.load_model(p, safe_mode=False)  # expect: MLG605",
    ),
    _c(
        "keras-enable-unsafe",
        "import keras\nkeras.config.enable_unsafe_deserialization()  # expect: MLG605",
    ),
    _c(
        "keras-saving-from",
        "from keras.saving import load_model\nm = load_model(p, safe_mode=False)  # expect: MLG605",
    ),
    _c(
        "keras-safe-explicit",
        "from keras.saving import load_model\nm = load_model(p, safe_mode=True)",
    ),
]

REMOTE = [
    _c(
        "trust-remote",
        f'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/x", revision="{SHA}", trust_remote_code=True)  # expect: MLG606',
    ),
    _c(
        "trust-remote-off",
        f'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/x", revision="{SHA}")',
    ),
    _c(
        "trust-remote-pipeline",
        f'from transformers import pipeline\np = pipeline("text-generation", model="org/x", revision="{SHA}", trust_remote_code=True)  # expect: MLG606',
    ),
    _c(
        "trust-remote-dict",
        f'''
from transformers import AutoTokenizer
kw = {{"trust_remote_code": True}}
t = AutoTokenizer.from_pretrained("org/x", revision="{SHA}", **kw)  # expect: MLG606
''',
    ),
    _c(
        "trust-remote-wrapper",
        f'''
from transformers import AutoModel
def get(name, **kw):
    return AutoModel.from_pretrained(name, revision="{SHA}", **kw)
m = get("org/x", trust_remote_code=True)  # expect: MLG606
''',
    ),
    _c(
        "trust-remote-false",
        f'import transformers\nm = transformers.AutoModel.from_pretrained("org/x", revision="{SHA}", trust_remote_code=False)',
    ),
    _c(
        "torch-hub",
        'import torch\nm = torch.hub.load("pytorch/vision", "resnet18")  # expect: MLG607 MLG621 MLG622',
    ),
    _c("torch-hub-local", 'import torch\nm = torch.hub.load("./hubrepo", "net", source="local")'),
    _c(
        "torch-hub-pinned",
        f'import torch\nm = torch.hub.load("owner/repo:{SHA}", "net")  # expect: MLG607 MLG622',
    ),
    _c(
        "mlflow-s3",
        'import mlflow\nm = mlflow.pyfunc.load_model("s3://bucket/model")  # expect: MLG608',
    ),
    _c("mlflow-registry", 'import mlflow\nm = mlflow.pyfunc.load_model("models:/churn/3")'),
    _c(
        "mlflow-http",
        'import mlflow.sklearn\nm = mlflow.sklearn.load_model("https://example.com/m")  # expect: MLG608',
    ),
    _c(
        "mlflow-run",
        'import mlflow\nm = mlflow.pyfunc.load_model(f"runs:/{RUN}/model")  # expect: MLG608',
    ),
    _c(
        "mlflow-run-constant",
        'import mlflow\nRUN = "abc"\nm = mlflow.pyfunc.load_model(f"runs:/{RUN}/model")',
    ),
]

YAML_HYDRA = [
    _c("yaml-loader", "import yaml\nc = yaml.load(f, Loader=yaml.Loader)  # expect: MLG609"),
    _c("yaml-safe-loader", "import yaml\nc = yaml.load(f, Loader=yaml.SafeLoader)"),
    _c("yaml-safe-load", "import yaml\nc = yaml.safe_load(f)"),
    _c("yaml-unsafe-load", "import yaml\nc = yaml.unsafe_load(f)  # expect: MLG609"),
    _c("yaml-no-loader", "import yaml\nc = yaml.load(f)  # expect: MLG609"),
    _c(
        "yaml-full-loader",
        "from yaml import load, FullLoader\nc = load(f, FullLoader)  # expect: MLG609",
    ),
    _c("yaml-csafe", "import yaml\nfrom yaml import CSafeLoader\nc = yaml.load(f, CSafeLoader)"),
    _c(
        "hydra-downloaded",
        f'''
from huggingface_hub import hf_hub_download
from hydra.utils import instantiate
from omegaconf import OmegaConf
path = hf_hub_download("org/x", "config.yaml", revision="{SHA}")
cfg = OmegaConf.load(path)
model = instantiate(cfg.model)  # expect: MLG610
''',
    ),
    _c(
        "hydra-local",
        """
import hydra
from hydra.utils import instantiate
@hydra.main(config_path="conf", config_name="train")
def main(cfg):
    model = instantiate(cfg.model)
""",
    ),
    _c(
        "hydra-requests",
        """
import hydra, requests
from omegaconf import OmegaConf
def build(url):
    cfg = OmegaConf.create(requests.get(url).json())
    return hydra.utils.call(cfg)  # expect: MLG610
""",
    ),
]

SOURCES = [
    _c(
        "hub-floating",
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/x")  # expect: MLG621',
    ),
    _c(
        "hub-pinned",
        f'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/x", revision="{SHA}")',
    ),
    _c(
        "hub-branch",
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/x", revision="main")  # expect: MLG621',
    ),
    _c(
        "hf-hub-download",
        'from huggingface_hub import hf_hub_download\np = hf_hub_download(repo_id="org/x", filename="m.bin")  # expect: MLG621',
    ),
    _c(
        "snapshot-pinned",
        f'import huggingface_hub as hh\np = hh.snapshot_download("org/x", revision="{SHA}")',
    ),
    _c(
        "hub-fstring",
        'from transformers import AutoModel\nORG = "org"\nm = AutoModel.from_pretrained(f"{ORG}/x")  # expect: MLG621',
    ),
    _c(
        "hub-mirror",
        f'from huggingface_hub import hf_hub_download\np = hf_hub_download("org/x", "m.bin", revision="{SHA}", endpoint="https://mirror.example")  # expect: MLG622',
    ),
    _c("vllm", 'from vllm import LLM\nllm = LLM(model="org/x")  # expect: MLG621'),
    _c("url-constant", 'WEIGHTS = "https://example.com/files/model.safetensors"  # expect: MLG622'),
    _c(
        "bucket",
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("s3://bucket/models/x")  # expect: MLG622',
    ),
    _c(
        "local-path",
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("./checkpoints/run1")',
    ),
    _c(
        "hf-endpoint-env",
        'import os\nos.environ["HF_ENDPOINT"] = "https://hf-mirror.com"  # expect: MLG622',
    ),
    _c("docs-url", 'DOCS = "https://example.com/docs/index.html"'),
    _c(
        "state-dict-url",
        'import torch\nsd = torch.hub.load_state_dict_from_url("https://download.pytorch.org/models/resnet18.pth")  # expect: MLG622',
    ),
    _c(
        "dynamic",
        "from transformers import AutoModel\nm = AutoModel.from_pretrained(args.model)  # expect: MLG624",
    ),
    _c(
        "hub-url",
        'URL = "https://huggingface.co/org/x/resolve/main/model.safetensors"  # expect: MLG621 MLG622',
    ),
    _c(
        "hub-wrapper",
        """
from transformers import AutoModel
def get(name):
    return AutoModel.from_pretrained(name)
m = get("org/x")  # expect: MLG621
""",
    ),
]

NOTEBOOKS = [
    _c(
        "nb-torch",
        """
import torch as t
# %% markdown
# Loading *the* model
# %% cell
%pip install torch
m = t.load("a.pt", weights_only=False)  # expect: MLG601
""",
        notebook=True,
    ),
    _c(
        "nb-pickle",
        """
!wget https://example.com/data.pkl
import pickle
# %% cell
obj = pickle.load(open("data.pkl", "rb"))  # expect: MLG603
""",
        notebook=True,
    ),
    _c(
        "nb-safe",
        """
from safetensors.torch import load_file
# %% cell
w = load_file("m.safetensors")
""",
        notebook=True,
    ),
    _c(
        "nb-bash-cell",
        f'''
%%bash
python -c "import pickle; pickle.load(open('x', 'rb'))"
# %% cell
from transformers import AutoModel
m = AutoModel.from_pretrained("org/x", revision="{SHA}", trust_remote_code=True)  # expect: MLG606
''',
        notebook=True,
    ),
]

CASES = [*TORCH, *PICKLE, *ARRAYS_KERAS, *REMOTE, *YAML_HYDRA, *SOURCES, *NOTEBOOKS]
