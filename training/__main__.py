"""Train one autoencoder.

    python -m training --model vae --dataset digits --epochs 5 --out runs/vae-digits
    python -m training --model vae --dataset frey --data-dir ../shared/data --out runs/frey
    python -m training --model sae --dataset mnist-test --data-dir ../shared/data --out runs/sae

Writes OUT/metrics.json, OUT/model.keras and the images as PNG. Plug-ins (the `tracking`
package, when installed) add their own flags, e.g. MLflow logging and registration.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shutil
import sys
from pathlib import Path

from training.cli import OneLineErrors, add_config_arguments, add_preset_argument, config_from_args
from training.errors import UserError

PLUGINS = ("tracking.plugin",)


def load_plugins() -> list:
    found = []
    for name in PLUGINS:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # the plug-in itself is absent: fine
                continue
            raise
    return found


def writable(folder: Path, flag: str) -> None:
    """Check that `folder` can be made and written in, or fail with one line; leave nothing behind."""
    made = next((p for p in [folder, *folder.parents][::-1] if not p.exists()), None)  # its first missing part
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".aesweep-write-check"
        probe.write_text("")
        probe.unlink()
        if made is not None:
            shutil.rmtree(made)
    except OSError as e:
        raise UserError(f"cannot write to {flag} {folder} ({e.strerror or type(e).__name__}); give a writable "
                        f"folder") from None


def build_parser(plugins=()) -> argparse.ArgumentParser:
    p = OneLineErrors(prog="python -m training", description=__doc__.split("\n\n")[0])
    add_preset_argument(p)
    add_config_arguments(p)
    p.add_argument("--out", default=None, help="output folder for metrics.json, model.keras and PNG images "
                                               "(default: runs/<model>-<dataset>)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="resumable per-epoch checkpoints; an interrupted run continues from here")
    for plugin in plugins:
        plugin.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    plugins = load_plugins()
    args = build_parser(plugins).parse_args(argv)
    try:
        config = config_from_args(args)
        from training.data import dataset_label, load_dataset

        out = Path(args.out or f"runs/{config.model}-{dataset_label(config.dataset)}")
        writable(out, "--out")  # found now, not after the training
        if args.checkpoint_dir:
            writable(Path(args.checkpoint_dir), "--checkpoint-dir")
        from training.loop import train
        from training.callbacks import ProgressPrinter
        from training.images import save_all

        data = load_dataset(config.dataset, config.data_dir)
        with contextlib.ExitStack() as stack:
            # A plug-in session is a context manager that yields its callbacks; it sees any
            # exception or interrupt (to close its records) before the exception goes on.
            callbacks = [ProgressPrinter()]
            for plugin in plugins:
                callbacks += stack.enter_context(plugin.session(args, config, data))
            result = train(config, callbacks=callbacks, checkpoint_dir=args.checkpoint_dir or None, dataset=data)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("[aesweep] interrupted: any MLflow run was closed as KILLED; --checkpoint-dir runs resume",
              file=sys.stderr)
        return 130
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(
        {"status": result.status, "epochs": result.epochs_completed, **result.metrics}, indent=2) + "\n")
    if not result.diverged:
        result.model.save(out / "model.keras")
        save_all(result, out)
    print(f"[aesweep] wrote {out}/metrics.json" + ("" if result.diverged else ", model.keras and images"))
    return 1 if result.diverged else 0


if __name__ == "__main__":
    sys.exit(main())
