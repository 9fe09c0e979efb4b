#!/usr/bin/env python3
"""Checks every #include of the C++ sources against the dependency rule in ARCHITECTURE.md.

The rule is the fenced block tagged `dependency-rules` in ARCHITECTURE.md, one line per folder:

    <folder>/ -> <allowed> <allowed> ...

An allowed entry is a folder prefix ("kernels/": that folder and everything below it), the files
directly in a folder ("probes/backends/*": not its subfolders), or one file. A source file
follows the rule of the longest folder that contains it. The vendor walls are checked too: the
system headers in VENDOR_HEADERS may only be included from the folders listed with them.

Exit status: 0 when every include follows the rule, 1 with one line per violation otherwise.
"""
import pathlib
import re
import sys

SOURCE_SUFFIXES = {".cpp", ".hpp", ".cu", ".cuh"}
CHECKED_ROOTS = ("common/", "kernels/", "probes/", "daemon/")
# System header prefix -> folders that may include it (vendors behind walls).
VENDOR_HEADERS = {
    "vulkan/": ("probes/backends/vulkan/",),
    "cuda": ("probes/backends/cuda/", "kernels/cuda/"),
    "nvml": ("probes/telemetry/nvml/",),
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def read_rules(architecture: pathlib.Path):
    text = architecture.read_text()
    block = re.search(r"```text dependency-rules\n(.*?)```", text, re.S)
    if not block:
        sys.exit(f"{architecture}: no ```text dependency-rules block")
    rules = {}
    for number, line in enumerate(block.group(1).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        folder, arrow, allowed = line.partition("->")
        if not arrow or not folder.strip().endswith("/"):
            sys.exit(f"{architecture}: dependency-rules line {number}: expected '<folder>/ -> <allowed>...'")
        rules[folder.strip()] = allowed.split()
    return rules


def allows(entry: str, target: str) -> bool:
    if entry.endswith("/*"):
        folder = entry[:-1]
        return target.startswith(folder) and "/" not in target[len(folder):]
    if entry.endswith("/"):
        return target.startswith(entry)
    return target == entry


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    rules = read_rules(root / "ARCHITECTURE.md")
    problems = []
    for folder in rules:
        if not (root / folder).is_dir():
            problems.append(f"ARCHITECTURE.md names {folder}, which does not exist")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix not in SOURCE_SUFFIXES or not rel.startswith(CHECKED_ROOTS):
            continue
        own = max((f for f in rules if rel.startswith(f)), key=len, default=None)
        if own is None:
            problems.append(f"{rel}: its folder has no line in ARCHITECTURE.md's dependency rules")
            continue
        own_folder = rel.rsplit("/", 1)[0] + "/"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            quote, target = match.groups()
            if quote == "<":
                for prefix, folders in VENDOR_HEADERS.items():
                    if target.startswith(prefix) and not rel.startswith(folders):
                        problems.append(f"{rel}:{number}: <{target}> is a vendor header, allowed only in {', '.join(folders)}")
                continue
            if target.startswith("spirv/"):  # generated from kernels/glsl for the Vulkan backend
                target = "kernels/glsl/" + target[len("spirv/"):]
            if target.startswith(own_folder) and "/" not in target[len(own_folder):]:
                continue  # a file of its own folder
            if not any(allows(entry, target) for entry in rules[own]):
                problems.append(f"{rel}:{number}: includes {target}, which the rule for {own} does not allow")
    for problem in problems:
        print(problem)
    print(f"dependency rule: {len(problems)} violation(s)" if problems else "dependency rule: every include follows it")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
