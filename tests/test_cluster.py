"""The work engine on a real two-node Ray cluster on this machine: training runs on the node with room for it,
and its model reaches the store on the head node through Ray alone.

The head node has one CPU and the worker node two, so a training job (two CPUs) can only run on the worker
node. The worker node's processes are given an artifacts folder of their own and an MNIST_DATA that names
no file: the job gets its data from the coordinator and sends its model back as bytes, so neither needs a
filesystem that the nodes share. Both nodes listen on loopback only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

# The engine before Ray: importing it keeps Ray on loopback, a setting that Ray reads when it is first
# imported.
import mnist_model.engine

# isort: split
import ray
import ray.cluster_utils

from mnist_model import artifacts
from mnist_model.settings import TrainingSettings

pytestmark = pytest.mark.integration

SETTINGS = TrainingSettings(epochs=1, augment=False, seed=7)
ENGINE_VARIABLES = [
    "RAY_ADDRESS",
    "MNIST_TRAINING_CPUS",
    "MNIST_QUEUE_LIMIT",
    "MNIST_JOBS_PER_SESSION",
    "MNIST_MAX_RUNS",
    "MNIST_MAX_STORE_MB",
]


@pytest.fixture(scope="module")
def cluster(mnist_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """A head node (1 CPU) and a worker node (2 CPUs, resource ``trainer``), both on 127.0.0.1.

    Yields the cluster, the worker node, the head's artifacts folder and the one the worker node's
    processes are given.
    """
    head_store = tmp_path_factory.mktemp("head-artifacts")
    worker_store = tmp_path_factory.mktemp("worker-artifacts")
    with pytest.MonkeyPatch.context() as patch:
        # Ray's processes inherit this process's environment: these keep them on loopback.
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setenv("MNIST_DATA", str(mnist_path))
        patch.setenv("MNIST_ARTIFACTS", str(head_store))
        for name in ENGINE_VARIABLES:
            patch.delenv(name, raising=False)
        if ray.is_initialized():
            ray.shutdown()
        two_nodes = ray.cluster_utils.Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False},
        )
        try:
            worker = two_nodes.add_node(
                num_cpus=2,
                resources={"trainer": 1},
                node_ip_address="127.0.0.1",
                env_vars={"MNIST_ARTIFACTS": str(worker_store), "MNIST_DATA": str(worker_store / "no-mnist-here")},
            )
            two_nodes.wait_for_nodes()
            yield two_nodes, worker, head_store, worker_store
        finally:
            ray.shutdown()
            two_nodes.shutdown()


@ray.remote(num_cpus=0)
def environment_variable(name: str) -> str | None:
    return os.environ.get(name)


def test_a_job_trains_on_the_worker_node_and_its_model_reaches_the_driver(cluster) -> None:
    two_nodes, worker, head_store, worker_store = cluster
    engine = mnist_model.engine.Engine.connect(address=two_nodes.address)
    nodes = {node["NodeID"]: node for node in ray.nodes() if node["Alive"]}
    assert {node["NodeManagerAddress"] for node in nodes.values()} == {"127.0.0.1"}
    trainers = [node_id for node_id, node in nodes.items() if "trainer" in node["Resources"]]
    assert trainers == [worker.node_id]
    head = two_nodes.head_node.node_id
    assert set(nodes) == {head, worker.node_id}
    seen_on_worker_node = ray.get(environment_variable.options(resources={"trainer": 0.01}).remote("MNIST_ARTIFACTS"))
    assert seen_on_worker_node == str(worker_store)

    status = engine.submit(SETTINGS, owner="session")
    deadline = time.monotonic() + 300
    while status.active and time.monotonic() < deadline:
        time.sleep(0.2)
        status = engine.job(SETTINGS)
    assert status.state == "done", status
    assert status.node == worker.node_id
    assert status.node != head

    assert [record.key for record in engine.runs()] == [status.key]
    manifest = json.loads((artifacts.runs_dir(head_store) / status.key / artifacts.MANIFEST_FILE).read_text())
    model_file = engine.model_file(status.key)
    assert hashlib.sha256(model_file).hexdigest() == manifest["model_sha256"]
    assert not any(worker_store.iterdir()), "nothing is written on the worker node's side"

    # The model as served, checked against the test accuracy measured on the worker node after training.
    served = engine.evaluate(status.key)
    assert served.accuracy == pytest.approx(manifest["test_accuracy"], abs=1e-6)
    assert served.accuracy > 0.9
    test_images, _ = engine.test_set()
    np.testing.assert_allclose(engine.predict(status.key, test_images[:200]), served.probabilities[:200], atol=1e-5)
