"""Blocker 1 of issue 10, without Docker: the load-generator image runs its entry points.

The wheel is built from exactly what the Dockerfile's build stage copies, installed NON-editable
into a fresh virtual environment (the heavy dependencies come from this checkout's .venv through
a .pth line, which cannot re-run .venv's editable finder), the runtime stage's working directory
is laid out from its COPY/WORKDIR lines, and every in-cluster entry point runs from there with
the stage's ENV. The old image (sources copied into WORKDIR) fails here: the bare servecmp/
folder shadows the installed package and has no loadtests/deploy/models subpackages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helm_util import ROOT

from servecmp.cluster import images, loadgen

DOCKERFILE = ROOT / "deploy" / "kind" / "loadgen.Dockerfile"
pytestmark = [pytest.mark.timeout(600), pytest.mark.heavy]


def _place(src_root: Path, root: Path, copy: images.Copy, workdir: str) -> None:
    dest = copy.dest if copy.dest.startswith("/") else f"{workdir.rstrip('/')}/{copy.dest}"
    for rel in copy.sources:
        src = src_root / rel.rstrip("/")
        target = root / dest.lstrip("/")
        if src.is_dir():
            shutil.copytree(
                src,
                target,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            target = target / src.name if dest.endswith("/") else target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def _kserve_wheel_file(stage: images.Stage, member: str) -> Path:
    """What a stage that takes ``member`` out of the pinned kserve wheel (``pip download``)
    produces: the same file of the same release, from the KServe venv's installed wheel."""
    import re

    (pin,) = {m for r in stage.runs for m in re.findall(r"kserve==([0-9][^\s\"']*)", r)}
    member = member.removeprefix("/oip/")
    for site in sorted((ROOT / ".venv-kserve").glob("lib/python3*/site-packages")):
        found = site / "kserve" / "protocol" / "grpc" / member
        if (site / f"kserve-{pin}.dist-info").is_dir() and found.is_file():
            return found
    pytest.skip(f"no kserve {pin} wheel installed in .venv-kserve (scripts/setup.sh installs it)")


def _layout(stage: images.Stage, root: Path, stages: list[images.Stage] | None = None) -> Path:
    """The stage's files under ``root`` (= the image's /): from the build context, and from the
    stage that extracts the OIP schema out of the kserve wheel (emulated, see above)."""
    by_name = {st.name: st for st in stages or []}
    for copy, wd in zip(stage.copies, stage.copy_workdirs, strict=True):
        if copy.from_stage is None:
            _place(ROOT, root, copy, wd)
        elif any("kserve==" in r for r in by_name[copy.from_stage].runs):
            (src,) = copy.sources
            target = root / copy.dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(_kserve_wheel_file(by_name[copy.from_stage], src), target)
    work = root / stage.workdir.lstrip("/")
    work.mkdir(parents=True, exist_ok=True)
    return work


def _wheel(src: Path, wheels: Path) -> None:
    """``pip wheel --no-deps`` as the build stage runs it; offline when this venv's setuptools
    can build pyproject's metadata (>= 77, PEP 639 license), else with build isolation."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        offline = int(version("setuptools").split(".")[0]) >= 77
    except PackageNotFoundError:
        offline = False
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(src)]
    if offline:
        cmd.insert(5, "--no-build-isolation")
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("loadgen image")  # a space in the path, on purpose
    stages = images.parse_dockerfile(DOCKERFILE)
    runtime = stages[-1]
    # 1. the wheel, from exactly what the build stages copy (pip wheel in the build stage)
    wheels = tmp / "wheels"
    for st in stages[:-1]:
        if not any("pip wheel" in r for r in st.runs):
            continue
        src = _layout(st, tmp / f"ctx-{st.name}")
        if any("pip wheel" in r for r in st.runs):
            _wheel(src, wheels)
    built = sorted(wheels.glob("servecmp-*.whl")) if wheels.is_dir() else []
    if not built:  # the old single-stage image installed the copied source tree itself
        _wheel(_layout(runtime, tmp / "ctx-old"), wheels)
        built = sorted(wheels.glob("servecmp-*.whl"))
    (wheel,) = built
    # 2. a fresh venv with the wheel installed non-editable; heavy deps through a .pth line
    venv = tmp / "venv"
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,  # type: ignore[attr-defined]
        timeout=120,
    )
    py = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--no-index",
            "--no-compile",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "zz_servecmp_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # 3. the runtime stage's working directory, as its COPY/WORKDIR lines lay it out
    root = tmp / "image-root"
    work = _layout(runtime, root, stages)
    # absolute paths the image's ENV names are files the image has: here under root
    image_env = {
        k: str(root / v.lstrip("/")) if v.startswith("/") and (root / v.lstrip("/")).exists() else v
        for k, v in runtime.env.items()
    }
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp / "home"),  # the Job sets HOME=/tmp (a writable emptyDir)
        "LANG": "C.UTF-8",
        **image_env,
    }
    return {"py": py, "work": work, "env": env, "site": site, "stage": runtime, "root": root}


def _run(image: dict, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), cwd=image["work"], env=image["env"], capture_output=True, text=True, timeout=180
    )


def test_servecmp_imports_from_the_installed_wheel(image: dict) -> None:
    proc = _run(
        image,
        str(image["py"]),
        "-c",
        "import servecmp, servecmp.load.engine.step, servecmp.cluster.loadgen; "
        "print(servecmp.__file__)",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(image["site"])), proc.stdout


def test_servecmp_steps_runs_in_the_image_workdir(image: dict) -> None:
    proc = _run(image, str(image["py"].parent / "servecmp"), "steps", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--cluster-mode" in proc.stdout


def test_step_module_runs_in_the_image_workdir(image: dict) -> None:
    proc = _run(image, str(image["py"]), "-m", "servecmp.load.engine.step", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--spec" in proc.stdout


def _locustfiles(image: dict) -> list[str]:
    job = loadgen.LoadJob(
        run_id="r",
        target="t",
        address="a:1",
        image="i:1",
        engine="locust",
        experiment_text="name: x\n",
    )
    default = Path(job.locustfile)
    files = sorted((image["work"] / default.parent).glob("*.py"))
    return [
        str(f.relative_to(image["work"])) for f in files if f.stem not in ("__init__", "common")
    ]


def test_every_locustfile_loads_in_the_image_workdir(image: dict) -> None:
    names = _locustfiles(image)
    assert len(names) >= 4, names
    for name in names:
        # --list imports the locustfile (Locust puts the cwd and the file's folder on sys.path)
        proc = _run(image, str(image["py"]), "-m", "locust", "-f", name, "--list")
        assert proc.returncode == 0 and "Available Users" in proc.stdout, (
            name,
            proc.stderr[-2000:],
        )


def test_job_manifests_match_the_image() -> None:
    """The Job runs in the Dockerfile's WORKDIR and names a locustfile that the image has."""
    runtime = images.parse_dockerfile(DOCKERFILE)[-1]
    assert runtime.env.get("PYTHONSAFEPATH") == "1"
    assert runtime.user and not runtime.user.startswith("0")
    for engine in ("steps", "locust"):
        job = loadgen.LoadJob(
            run_id="r",
            target="t",
            address="a:1",
            image="i:1",
            engine=engine,
            experiment_text="name: x\n",
        )
        for doc in loadgen.manifests(job):
            if doc["kind"] == "Job":
                (c,) = doc["spec"]["template"]["spec"]["containers"]
                assert c["workingDir"] == runtime.workdir
    copied = {
        (c.dest if c.dest.startswith("/") else f"{wd.rstrip('/')}/{c.dest}").rstrip("/")
        for c, wd in zip(runtime.copies, runtime.copy_workdirs, strict=True)
        if c.from_stage is None
    }
    default = loadgen.LoadJob(run_id="r", target="t", address="a:1", image="i:1").locustfile
    assert f"{runtime.workdir}/{Path(default).parent}" in copied
    # no source package in the working directory: nothing to shadow the installed one
    assert not any(p.endswith(("/servecmp", "/loadtests", "/models", "/deploy")) for p in copied)


_BUILD_CLIENTS = """
import json, sys
from servecmp.cluster import provenance
from servecmp.experiment import load_experiment
from servecmp.load.clients.base import make_client
from servecmp.load.payloads import PayloadSet
from servecmp.models.registry import get_model

built = []
for path in sys.argv[1:]:
    exp = load_experiment(path)
    payloads = PayloadSet.build(get_model(exp.model), exp.seed, exp.payload.batch_size, 2,
                                expected=lambda x: [[0.0] * get_model(exp.model).num_classes] * len(x))
    for name, address in provenance.addresses(exp, "servecmp", "servecmp"):
        (t,) = [t for t in exp.targets if t.name == name]
        payloads.prepare([t.effective_encoding])
        client = make_client(t, address, payloads, 1.0)
        built.append([path.rsplit("/", 1)[-1], name, type(client).__name__])
        getattr(client, "close", lambda: None)()
print(json.dumps(built))
"""


def test_every_shipped_target_gets_its_client_in_the_image(image: dict) -> None:
    """The client of every REST/gRPC target of every shipped experiment is built where the load
    Job builds it (KServe's OIP gRPC client needs its schema in the image: it once looked only
    for a .venv-kserve beside the sources, and `kind load` exited 1 on quick.yaml)."""
    import json

    from servecmp.experiment import load_experiment

    shipped = sorted((ROOT / "loadtests" / "experiments").glob("*.yaml"))
    assert len(shipped) >= 4
    proc = _run(image, str(image["py"]), "-c", _BUILD_CLIENTS, *map(str, shipped))
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    want = [
        [p.name, t.name]
        for p in shipped
        for t in load_experiment(p).targets
        if t.protocol.value in ("rest", "grpc")
    ]
    assert [b[:2] for b in built] == want
    assert any(name.startswith("kserve-grpc") for _, name, _ in built)


def test_space_in_checkout_path_is_exercised(image: dict) -> None:
    assert " " in str(image["work"])
    assert os.access(image["py"], os.X_OK)
