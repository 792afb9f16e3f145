"""What users see of the configuration stays put: CLI flag names, logged param names and values, and the
flat config dict stored with checkpoints and sweep states (captured from main before the configuration
was split into parts)."""
import pytest

from training.config import TrainConfig, applicable_params
from training.presets import PRESETS, preset

TRAINING_FLAGS = {
    '--activation', '--augment-rotate', '--augment-shift', '--batch-size', '--checkpoint-dir',
    '--cluster-epochs', '--cluster-weight', '--consistency-weight', '--contrast-temperature',
    '--contrast-weight', '--data-dir', '--dataset', '--epochs', '--experiment', '--hidden', '--image-every',
    '--input-dropout', '--iw-refine-steps', '--iw-samples', '--iw-train-samples', '--kl-weight',
    '--latent-dim', '--learning-rate', '--lr-schedule', '--model', '--no-system-metrics', '--no-tracking',
    '--out', '--preset', '--recon-loss', '--register', '--register-as', '--registry-metric', '--run-name',
    '--seed', '--sparsity-target', '--sparsity-weight', '--tracking-uri', '--traversal-steps',
    '--warmup-epochs', '--weight-decay', '--steps-per-epoch', '--recon-scale',
}
TUNING_FLAGS = {
    '--activation', '--address', '--augment-rotate', '--augment-shift', '--batch-size', '--cluster-epochs',
    '--cluster-weight', '--consistency-weight', '--contrast-temperature', '--contrast-weight',
    '--cpus-per-trial', '--data-dir', '--dataset', '--experiment', '--gpus-per-trial', '--hidden',
    '--image-every', '--input-dropout', '--iw-refine-steps', '--iw-samples', '--iw-train-samples',
    '--kl-weight', '--latent-dim', '--learning-rate', '--lr-schedule', '--max-concurrent', '--max-epochs',
    '--max-failures', '--metric', '--mode', '--model', '--name', '--no-system-metrics', '--num-samples',
    '--perturbation-interval', '--preset', '--recon-loss', '--register-as', '--repeats', '--resume',
    '--scheduler', '--search', '--seed', '--space',
    '--sparsity-target', '--sparsity-weight', '--storage-path', '--tracking-uri', '--traversal-steps',
    '--verbose', '--warmup-epochs', '--weight-decay', '--workers-per-trial',
    '--warm-start', '--warm-start-top',  # issue 15 (tuning/warm_start.py)
    '--steps-per-epoch', '--recon-scale',  # issue 12 (one recipe for any dataset)
}
# The flat config's keys (checkpoints' state.json, sweep states, Ray Train's loop config).
CONFIG_KEYS = {
    'model', 'dataset', 'data_dir', 'latent_dim', 'hidden', 'activation', 'kl_weight', 'sparsity_weight',
    'sparsity_target', 'recon_loss', 'learning_rate', 'batch_size', 'epochs', 'seed', 'lr_schedule',
    'warmup_epochs', 'weight_decay', 'input_dropout', 'iw_train_samples', 'cluster_epochs', 'cluster_weight',
    'augment_shift', 'augment_rotate', 'consistency_weight', 'contrast_weight', 'contrast_temperature',
    'iw_samples', 'iw_refine_steps', 'traversal_steps', 'steps_per_epoch', 'recon_scale',
}
# Params a run logs: what applies to its model and options, as MLflow shows them.
SAE_PARAMS = {
    'model': 'sae', 'dataset': 'digits', 'latent_dim': '8', 'hidden': '256,128', 'activation': 'relu',
    'sparsity_weight': '0.01', 'sparsity_target': '0.05', 'recon_loss': 'auto', 'learning_rate': '0.001',
    'batch_size': '128', 'epochs': '20', 'seed': '0', 'lr_schedule': 'constant', 'warmup_epochs': '0',
    'weight_decay': '0.0', 'input_dropout': '0.2', 'cluster_epochs': '3', 'cluster_weight': '50.0',
    'augment_shift': '0.1', 'augment_rotate': '0.0', 'consistency_weight': '0.5', 'contrast_weight': '1.0',
    'contrast_temperature': '0.5', 'recon_scale': 'sum', 'traversal_steps': '9',
}
DIGITS_VAE_PARAMS = {
    'model': 'vae', 'dataset': 'digits', 'latent_dim': '8', 'hidden': '256,128', 'activation': 'relu',
    'kl_weight': '1.0', 'recon_loss': 'auto', 'learning_rate': '0.001', 'batch_size': '64', 'epochs': '60',
    'seed': '0', 'lr_schedule': 'cosine', 'warmup_epochs': '0', 'weight_decay': '0.0',
    'iw_train_samples': '5', 'augment_shift': '0.0', 'augment_rotate': '0.0', 'iw_samples': '1000',
    'iw_refine_steps': '200', 'traversal_steps': '9',
}


def flags(parser):
    return {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}


def test_cli_flag_names():
    from training.__main__ import build_parser, load_plugins
    from tuning.__main__ import build_parser as tuning_parser

    assert flags(build_parser(load_plugins())) == TRAINING_FLAGS
    assert flags(tuning_parser()) == TUNING_FLAGS


def param_strings(config):
    from tracking.params import param_value

    return {k: param_value(v) for k, v in applicable_params(config).items()}


def test_logged_param_names_and_values():
    sae = TrainConfig(model="sae", cluster_epochs=3, augment_shift=0.1, contrast_weight=1.0, consistency_weight=0.5,
                      input_dropout=0.2)
    assert param_strings(sae) == SAE_PARAMS
    assert param_strings(preset("digits-vae")) == DIGITS_VAE_PARAMS
    assert set(param_strings(TrainConfig())) == set(DIGITS_VAE_PARAMS)  # the VAE's params, with its defaults


@pytest.mark.parametrize("name", [None, *PRESETS])
def test_flat_config_round_trips(name):
    config = preset(name) if name else TrainConfig()
    flat = config.to_dict()
    assert set(flat) == CONFIG_KEYS
    assert TrainConfig.from_dict(flat) == config
    assert flat == {k: getattr(config, k) if k != "hidden" else list(config.hidden) for k in CONFIG_KEYS}


def test_parts_and_flat_names_agree():
    from training.config import SAEConfig, VAEConfig

    sae = TrainConfig(model="sae", latent_dim=3, sparsity_weight=0.5, epochs=4)
    assert sae.network == SAEConfig(latent_dim=3, sparsity_weight=0.5) and sae.optimiser.epochs == 4
    assert (sae.latent_dim, sae.sparsity_weight, sae.epochs) == (3, 0.5, 4)
    assert sae.kl_weight == VAEConfig().kl_weight  # the other model's field does not apply: its default
    assert TrainConfig(model="sae", network=SAEConfig(latent_dim=3, sparsity_weight=0.5)).replace(epochs=4) == sae
    assert sae.replace(model="vae").network == VAEConfig(latent_dim=3)
    assert TrainConfig(model="vae", sparsity_weight=0.5) == TrainConfig(model="vae")  # given, checked, ignored


def test_models_saved_before_their_config_was_a_part_still_load():
    """Keras configs of models saved before: the VAE wrote its likelihood as `likelihood`."""
    from training.models import VAE, SparseAutoencoder

    vae = VAE.from_config({"name": "vae", "image_shape": [3, 3], "latent_dim": 2, "hidden": [4],
                           "activation": "relu", "likelihood": "bce", "kl_weight": 2.0, "iw_train_samples": 3})
    assert (vae.likelihood, vae.kl_weight, vae.noise_dim, vae.image_shape) == ("bce", 2.0, 6, (3, 3))
    sae = SparseAutoencoder.from_config({
        "name": "sae", "image_shape": [3, 3], "latent_dim": 2, "hidden": [4], "activation": "relu",
        "recon_loss": "mse", "sparsity_weight": 0.1, "sparsity_target": 0.05, "input_dropout": 0.2,
        "consistency_weight": 0.0, "contrast_weight": 0.0, "contrast_temperature": 0.5})
    assert sae.config.input_dropout == 0.2 and sae.noise_dim == 9
