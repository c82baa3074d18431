#!/usr/bin/env python3
"""Compiles every libtorch translation unit of a configured build against another libtorch's
headers (e.g. Debian 13's libtorch-dev 2.6, unpacked with `dpkg -x` into ROOT), syntax only and
with the build's own flags (warnings as errors). Proves the torch adapter, CLI, tests and
benchmarks compile against libtorch 2.x where no such libtorch can be installed.

usage: check-torch2-headers.py BUILD_DIR ROOT [-j N]
"""
import concurrent.futures
import json
import shlex
import subprocess
import sys


def main():
    build, root = sys.argv[1], sys.argv[2]
    jobs = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "-j" else 2
    inc = f"{root}/usr/include"
    # -isystem directories are searched before the default system directories, so these
    # headers win over the /usr/include/{ATen,c10,torch} of the installed libtorch.
    extra = ["-isystem", inc, "-isystem", f"{inc}/torch/csrc/api/include", "-fsyntax-only"]
    cmds = json.load(open(f"{build}/compile_commands.json"))
    units = [c for c in cmds if "torch/csrc/api/include" in c["command"]]

    def run(c):
        args = shlex.split(c["command"])
        out = [a for i, a in enumerate(args) if a != "-o" and (i == 0 or args[i - 1] != "-o")]
        p = subprocess.run(out[:1] + extra + out[1:], cwd=c["directory"], capture_output=True,
                           text=True)
        return c["file"], p.returncode, p.stderr

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        for f, rc, err in ex.map(run, units):
            print(("ok    " if rc == 0 else "FAIL  ") + f, flush=True)
            if rc:
                failed += 1
                print(err[-4000:])
    print(f"{len(units) - failed} of {len(units)} libtorch translation units compile against {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
