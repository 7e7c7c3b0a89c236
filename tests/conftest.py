"""Shared fixtures: tiny ONNX models, tiny-lm, and the registry on SQLite and on PostgreSQL.

Registry tests take the ``database_url`` fixture and so run twice: against a SQLite file in
a temporary directory and against the PostgreSQL server on 127.0.0.1:5432 (database
``test``), each test in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from onnx import TensorProto, helper
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from ferryman.artifacts import LocalArtifactStore
from ferryman.registry import Database, Registry
from tests.support import SteppedClock, free_port

if TYPE_CHECKING:
    from tests.s3server import S3Server

pytest_plugins = [
    "tests.leftovers",  # every test stops what it starts
    "tests.ci_services",  # CI=true: a missing service fails, not skips
]


# The in-process CLI's Rich consoles take their width when ferryman.cli is first imported;
# pytest-xdist workers inherit COLUMNS=80, which would cut table cells the tests read.
os.environ["COLUMNS"] = "200"

POSTGRES_URL = os.environ.get(
    "FERRYMAN_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)


def make_onnx(
    name: str = "relu", width: int = 4, seed_value: float = 0.0, input_name: str = "x"
) -> bytes:
    """A valid, tiny ONNX model: y = relu(x + c). ``seed_value`` makes distinct files;
    another ``input_name`` or ``width`` makes a version whose clients send other inputs."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])
    const = helper.make_tensor("c", TensorProto.FLOAT, [width], [seed_value] * width)
    graph = helper.make_graph(
        [helper.make_node("Add", [input_name, "c"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        name,
        [x],
        [y],
        initializer=[const],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    serialized: bytes = model.SerializeToString()  # IR 9: loadable by every ONNX Runtime we support
    return serialized


def make_unloadable_onnx(width: int = 4) -> bytes:
    """An ONNX file that passes onnx.checker and the format gate but that ONNX Runtime cannot
    load: its one node is an operator of a domain no runtime implements."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])
    node = helper.make_node("Unheard", ["x"], ["y"], domain="ai.ferryman.test")
    graph = helper.make_graph([node], "unloadable", [x], [y])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.ferryman.test", 1)]
    serialized: bytes = helper.make_model(
        graph, opset_imports=opsets, ir_version=9
    ).SerializeToString()
    return serialized


def _external_tensor(name: str, location: str, size: int = 16) -> TensorProto:
    """A UINT8 tensor whose bytes are ``size`` bytes of the file ``location``."""
    tensor = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[size])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def make_external_data_onnx(where: str, location: str) -> bytes:
    """A model whose output is x + (16 bytes of the file ``location``), its tensor hidden
    ``where``: ``sparse-constant`` (a Constant's sparse_value) or ``function`` (a local
    function's Constant). The format gate must refuse it."""
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [16])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [16])
    add = helper.make_node("Add", ["x", "c"], ["y"])
    opsets = [helper.make_opsetid("", 17)]
    functions = []
    if where == "sparse-constant":
        indices = helper.make_tensor("i", TensorProto.INT64, [16], list(range(16)))
        sparse = helper.make_sparse_tensor(_external_tensor("v", location), indices, [16])
        nodes = [helper.make_node("Constant", [], ["c"], sparse_value=sparse), add]
    else:  # a local function's Constant: ONNX Runtime inlines it
        constant = helper.make_node("Constant", [], ["c"], value=_external_tensor("v", location))
        body = helper.make_function("local", "F", ["x"], ["y"], [constant, add], opsets)
        functions, opsets = [body], [*opsets, helper.make_opsetid("local", 1)]
        nodes = [helper.make_node("F", ["x"], ["y"], domain="local")]
    graph = helper.make_graph(nodes, "g", [x], [y])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=9, functions=functions)
    return bytes(model.SerializeToString())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long variants (``soak``) run only when asked for by name: ``-m soak``."""
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a soak test: run it with -m soak")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)


@pytest.fixture
def onnx_bytes() -> Callable[..., bytes]:
    return make_onnx


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"NO POSTGRESQL at {POSTGRES_URL} - the PostgreSQL half is NOT tested: {exc}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def registry(database: Database, store: LocalArtifactStore) -> Registry:
    return Registry(database, store)


@pytest.fixture(scope="session")
def tiny_lm_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose registry holds tiny-lm v1, trained by the CLI (40 steps, about 20 s
    of CPU with the export; once per session for the engine and the end-to-end tests)."""
    data = tmp_path_factory.mktemp("tiny-lm") / "data"
    ferryman = str(Path(sys.executable).parent / "ferryman")
    command = [ferryman, "train", "tiny-lm", "--param", "steps=40", "--json",
               "--data-dir", str(data)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return data


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free 127.0.0.1 port, for the whole session (tests/s3server.py)."""
    from tests.s3server import running_s3_server  # noqa: PLC0415 - moto loads only when asked

    with running_s3_server() as server:
        yield server


@pytest.fixture
def clock() -> SteppedClock:
    """A clock at 0 s that moves only when the test moves it."""
    return SteppedClock()


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    """Gives a loopback port nothing listens on, each time it is called."""
    return free_port
