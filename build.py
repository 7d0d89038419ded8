#!/usr/bin/env python3
"""Build the gsseg Blender extension zip with Blender's own extension builder.

    python build.py                         # every platform, one zip (dist/gsseg-VERSION.zip)
    python build.py --split-platforms       # one zip per platform
    python build.py --platform current      # only this machine's platform (what the tests use)
    python build.py --validate-only         # stage and validate, build nothing
    python build.py --write-manifest        # download everything and rewrite the wheel list of
                                            # blender_manifest.toml to match

Steps: download the wheels Blender lacks into ./wheels/ (cached; Blender bundles numpy, but not plyfile, Pillow
or numba), stage the contents of blender_gsseg/ at the root of a temporary folder together with the manifest
(version from blender_gsseg.__version__, wheels and platforms set to what is bundled) and the wheels,
then run ``blender_ext.py validate`` and ``blender_ext.py build`` (from the bpy module, a Blender install, or
--blender-ext PATH).
"""

import argparse
import glob
import importlib.util
import os
import platform as platform_module
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(ROOT, "blender_gsseg")
MANIFEST = os.path.join(ROOT, "blender_manifest.toml")
WHEELS = os.path.join(ROOT, "wheels")
DIST = os.path.join(ROOT, "dist")

# Python versions embedded by the Blender releases we support: 4.2-5.0 embed 3.11, 5.1+ embed 3.13.
PYTHON_VERSIONS = ("3.11", "3.13")
# Blender platform -> pip --platform tags (pip also accepts wheels for older OS versions than these).
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_14_0_arm64",),
    "macos-x64": ("macosx_14_0_x86_64",),
}
# Pure-Python wheels (one file serves every platform and Python 3 version).
# plyfile 1.1.4+ requires numpy>=2 in its metadata; Blender 4.2-5.0 ship numpy 1.26.
PURE_REQUIREMENTS = ("plyfile==1.1.3", "filelock==4.3.1")  # filelock: two runs never write one output at once
# Binary wheels, one per (Python version, platform). Blender does not bundle Pillow, nor Zstandard (SPZ version 4).
BINARY_REQUIREMENTS = ("pillow==13.0.0", "zstandard==0.25.0")
# The compiled CPU walk (numba and its llvmlite), per platform: numba 0.68.1 accepts NumPy 1.22-2.5 (Blender
# 4.2-5.0 ship 1.26); 0.62.1 is the last release with Intel-Mac wheels (NumPy up to 2.3). Where numba cannot load,
# the add-on says so and runs the numpy path.
COMPILED_WALK = {
    "linux-x64": ("numba==0.68.1", "llvmlite==0.50.0"),
    "windows-x64": ("numba==0.68.1", "llvmlite==0.50.0"),
    "macos-arm64": ("numba==0.68.1", "llvmlite==0.50.0"),
    "macos-x64": ("numba==0.62.1", "llvmlite==0.45.1"),
}
PIP_TIMEOUT = 600


def package_version():
    with open(os.path.join(PACKAGE, "__init__.py"), encoding="utf-8") as handle:
        match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', handle.read(), re.M)
    if not match:
        sys.exit("build.py: no __version__ in blender_gsseg/__init__.py")
    return match.group(1)


def current_platform():
    system = {"darwin": "macos", "windows": "windows", "linux": "linux"}.get(platform_module.system().lower())
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform_module.machine().lower())
    name = f"{system}-{machine}"
    if name not in PLATFORMS:
        sys.exit(f"build.py: this platform ({platform_module.system()} {platform_module.machine()}) is not one "
                 f"the extension is built for ({', '.join(PLATFORMS)})")
    return name


def find_blender_ext(explicit=None):
    """The path of Blender's blender_ext.py: --blender-ext, $BLENDER_EXT, the bpy module, or a Blender on PATH."""
    candidates = [explicit, os.environ.get("BLENDER_EXT")]
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates += glob.glob(os.path.join(location, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                                 "blender_ext.py"))
    blender = shutil.which("blender")
    if blender:
        folder = os.path.dirname(os.path.realpath(blender))
        candidates += glob.glob(os.path.join(folder, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                             "blender_ext.py"))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    sys.exit("build.py: Blender's blender_ext.py not found: install the bpy module (pip install bpy), put "
             "blender on PATH, or pass --blender-ext PATH")


def _pip_download(requirement, target, python_version=None, platform_tags=()):
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--dest", target, requirement]
    if python_version:
        command += ["--python-version", python_version, "--implementation", "cp",
                    "--abi", "cp" + python_version.replace(".", "")]
    for tag in platform_tags:
        command += ["--platform", tag]
    print("build.py:", " ".join(command[3:]), flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=PIP_TIMEOUT)
    if result.returncode != 0:
        sys.exit(f"build.py: pip download {requirement} failed:\n{result.stdout[-2000:]}")


def _wheel_matches(filename, requirement, python_version=None, blender_platform=None):
    """Whether a wheel file name is the one ``requirement`` gives for this Python version and platform."""
    name, _, version = requirement.partition("==")
    parts = filename[:-len(".whl")].split("-")
    if len(parts) < 5 or parts[0].lower().replace("_", "-") != name.lower() or parts[1] != version:
        return False
    python_tag, platform_tag = parts[-3], parts[-1]
    if python_version and python_tag != "cp" + python_version.replace(".", ""):
        return False
    if blender_platform:
        system, machine = blender_platform.split("-")
        tags = platform_tag.split(".")
        prefix = {"linux": ("manylinux", "musllinux"), "windows": ("win",), "macos": ("macosx",)}[system]
        suffix = {"x64": ("x86_64", "amd64"), "arm64": ("arm64", "aarch64")}[machine]
        if system == "linux" and any(t.startswith("musllinux") for t in tags):
            return False
        return any(t.startswith(prefix) and (t.endswith(suffix) or (system == "macos" and t.endswith("universal2")))
                   for t in tags)
    return True


def ensure_wheels(platforms, python_versions, offline=False):
    """Download (or find in ./wheels/) every wheel needed; return their file names, sorted for the manifest."""
    os.makedirs(WHEELS, exist_ok=True)
    wanted = [(requirement, None, None) for requirement in PURE_REQUIREMENTS]
    wanted += [(requirement, python_version, blender_platform)
               for blender_platform in platforms
               for requirement in BINARY_REQUIREMENTS + COMPILED_WALK[blender_platform]
               for python_version in python_versions]
    names = []
    for requirement, python_version, blender_platform in wanted:
        def present():
            return sorted(f for f in os.listdir(WHEELS) if f.endswith(".whl")
                          and _wheel_matches(f, requirement, python_version, blender_platform))
        found = present()
        if not found:
            if offline:
                sys.exit(f"build.py: --offline and no wheel for {requirement} "
                         f"({python_version or 'any Python'}, {blender_platform or 'any platform'}) in {WHEELS}")
            with tempfile.TemporaryDirectory(dir=WHEELS, prefix=".download-") as target:
                _pip_download(requirement, target, python_version,
                              PLATFORMS[blender_platform] if blender_platform else ())
                for filename in os.listdir(target):
                    os.replace(os.path.join(target, filename), os.path.join(WHEELS, filename))
            found = present()
            if not found:
                sys.exit(f"build.py: pip downloaded no usable wheel for {requirement} ({python_version}, "
                         f"{blender_platform})")
        names.append(found[-1])
    return sorted(set(names), key=lambda n: (names.index(n)))


def _toml_list(values, indent="  "):
    return "[\n" + "".join(f'{indent}"{value}",\n' for value in values) + "]"


def manifest_text(version, wheels, platforms):
    """The root manifest with ``version``, ``wheels`` and ``platforms`` replaced (textually, keeping the rest)."""
    with open(MANIFEST, encoding="utf-8") as handle:
        text = handle.read()
    replacements = (
        (r'^version\s*=\s*"[^"]*"', f'version = "{version}"'),
        (r'^wheels\s*=\s*\[[^\]]*\]', "wheels = " + _toml_list(f"./wheels/{w}" for w in wheels)),
        (r'^platforms\s*=\s*\[[^\]]*\]', "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]"),
    )
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, lambda _m, r=replacement: r, text, count=1, flags=re.M)
        if count != 1:
            sys.exit(f"build.py: blender_manifest.toml has no line matching {pattern!r}")
    return text


def stage(folder, version, wheels, platforms):
    """Lay out the extension source in ``folder``: the package at the root (its CUDA sources with it), manifest, wheels."""
    shutil.copytree(PACKAGE, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*"))
    os.makedirs(os.path.join(folder, "wheels"), exist_ok=True)
    for wheel in wheels:
        shutil.copy2(os.path.join(WHEELS, wheel), os.path.join(folder, "wheels", wheel))
    with open(os.path.join(folder, "blender_manifest.toml"), "w", encoding="utf-8") as handle:
        handle.write(manifest_text(version, wheels, platforms))


def valid_tags_file(blender_ext):
    """Blender's own list of valid extension tags (scripts/modules/_bpy_internal/extensions/tags.py), or ''."""
    scripts = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(blender_ext)))))
    path = os.path.join(scripts, "modules", "_bpy_internal", "extensions", "tags.py")
    return path if os.path.isfile(path) else ""


def run_blender_ext(blender_ext, *args):
    command = [sys.executable, blender_ext, *args]
    print("build.py:", os.path.basename(blender_ext), " ".join(args), flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        sys.exit(f"build.py: blender_ext {args[0]} failed (exit code {result.returncode})")
    return result.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", default="all",
                        help="'all' (default), 'current', or a comma-separated list of " + ", ".join(PLATFORMS))
    parser.add_argument("--python", default=",".join(PYTHON_VERSIONS),
                        help="comma-separated Python versions to bundle binary wheels for (default %(default)s)")
    parser.add_argument("--split-platforms", action="store_true", help="one zip per platform")
    parser.add_argument("--output-dir", default=DIST, help="where the zips go (default dist/)")
    parser.add_argument("--blender-ext", help="path of Blender's bl_pkg/cli/blender_ext.py")
    parser.add_argument("--offline", action="store_true", help="use only wheels already in ./wheels/")
    parser.add_argument("--validate-only", action="store_true", help="stage and validate; build nothing")
    parser.add_argument("--write-manifest", action="store_true",
                        help="rewrite blender_manifest.toml's version and wheel list for all platforms, then stop")
    parser.add_argument("--keep-stage", action="store_true", help="print and keep the staging folder")
    args = parser.parse_args(argv)

    if args.platform == "all":
        platforms = list(PLATFORMS)
    elif args.platform == "current":
        platforms = [current_platform()]
    else:
        platforms = [p.strip() for p in args.platform.split(",") if p.strip()]
        unknown = [p for p in platforms if p not in PLATFORMS]
        if unknown:
            parser.error(f"unknown platform(s) {', '.join(unknown)}; choose from {', '.join(PLATFORMS)}")
    python_versions = [v.strip() for v in args.python.split(",") if v.strip()]
    version = package_version()

    if args.write_manifest:
        wheels = ensure_wheels(list(PLATFORMS), list(PYTHON_VERSIONS), args.offline)
        text = manifest_text(version, wheels, list(PLATFORMS))
        with open(MANIFEST, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"build.py: wrote {MANIFEST} ({len(wheels)} wheels)")
        return 0

    blender_ext = find_blender_ext(args.blender_ext)
    wheels = ensure_wheels(platforms, python_versions, args.offline)
    stage_dir = tempfile.mkdtemp(prefix="gsseg-stage-")
    try:
        stage(stage_dir, version, wheels, platforms)
        tags = ["--valid-tags", valid_tags_file(blender_ext)]
        run_blender_ext(blender_ext, "validate", *tags, stage_dir)
        if args.validate_only:
            return 0
        os.makedirs(args.output_dir, exist_ok=True)
        build_args = ["build", *tags, "--source-dir", stage_dir, "--output-dir", os.path.abspath(args.output_dir)]
        if args.split_platforms:
            build_args.append("--split-platforms")
        run_blender_ext(blender_ext, *build_args)
    finally:
        if args.keep_stage:
            print("build.py: staged in", stage_dir)
        else:
            shutil.rmtree(stage_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
