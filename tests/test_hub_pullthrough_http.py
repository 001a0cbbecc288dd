"""Pull-through as a Hugging Face client sees it: the real ``huggingface_hub`` against the
hub (uvicorn) with an upstream (tests/hubserver.py) and a real ``mlgate worker``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_support import registry_url_of, serving
from hubjobs_support import WORKER, wait_until, workers  # noqa: F401
from hubserver import HubServer
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from registry_models import write_benign
from registry_support import as_user

from mlgate.hub import pullthrough
from mlgate.hub.app import create_app
from mlgate.hub.commits import commit_id
from mlgate.hub.settings import HubSettings
from mlgate.registry.lifecycle import State

pytestmark = pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)


def test_a_client_gets_a_pulled_model_only_once_reviewed(
    registry,
    tmp_path: Path,
    workers,  # noqa: F811
) -> None:
    registry.add_user(WORKER, "publisher")
    model = write_benign(tmp_path / "tiny")
    with HubServer() as upstream:
        upstream.add_repo(
            "org/tiny",
            {p.name: (p.read_bytes(), "lfs") for p in model.iterdir()},
        )
        settings = HubSettings(registry.data_dir, registry_url_of(registry), upstream.url)
        app = create_app(settings)
        with serving(app) as url:
            token = as_user(registry, "rob").tokens.create(label="client").secret

            def download() -> str:
                return hf_hub_download(
                    "org/tiny", "config.json", endpoint=url, token=token,
                    cache_dir=tmp_path / "cache",
                )  # fmt: skip

            with pytest.raises(GatedRepoError, match="fetching from upstream"):
                download()
            assert registry.models() == []  # nothing is fetched in the request path
            workers(registry, "--upstream", upstream.url)
            wait_until(lambda: registry.models(), what="the fetch")
            version = wait_until(
                lambda: (v := registry.show("org/tiny")).state is State.SCANNED and v,
                what="the scan",
            )
            with pytest.raises(GatedRepoError, match="pending review"):
                download()

            as_user(registry, "rita").approve(version.ref, "reviewed the pulled model")

            assert pullthrough.approved(registry, app.state.queue, version.ref)
            wait_until(lambda: registry.show(version.ref).state is State.PUBLISHED, what="publish")
            assert Path(download()).read_bytes() == (model / "config.json").read_bytes()
            info = HfApi(endpoint=url, token=token).model_info("org/tiny")
            assert info.sha == commit_id(registry.show(version.ref))

            with pytest.raises(RepositoryNotFoundError):
                HfApi(endpoint=url, token=token).model_info("org/missing")
        app.state.registry.engine.dispose()
    fetched = [r for r in upstream.requests if "/resolve/" in r.path]
    assert len(fetched) == len(list(model.iterdir()))  # each file fetched once, upstream only
