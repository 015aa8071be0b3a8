"""The default training configuration (ml_collections), shared by binaries and notebooks."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """A short IWAE-5 run on the embedded binarized-MNIST subset (the quick start)."""
  c = ml_collections.ConfigDict()
  c.method = 'iwae'
  c.k = 5  # particles per data point in the IWAE bound
  c.num_samples = 1  # M: samples averaged by the VAE's ELBO (and MIWAE/PIWAE's outer M)
  # Per-method settings; generic code never reads these.
  c.ciwae = ml_collections.ConfigDict({'beta': 0.5})  # CIWAE's weight on the ELBO
  c.air = ml_collections.ConfigDict({
      'denoise_sigma': 0.0,  # DVAE/DIWAE: std of the Gaussian noise on the encoder input
      'denoise_alpha': 1.0,  # DVAE/DIWAE: weight of the denoising term (0 = VAE/IWAE)
      'encoder_max_norm': 0.0,  # H > 0: weight-normalized inference (WNI), ||w_i|| <= H
  })
  c.rem = ml_collections.ConfigDict({
      'eps': 1e-3,  # eps I added to the moment-matched covariance (eq. 23)
      'covariance': 'weighted',  # 'weighted' (eq. 22) or 'unweighted' (the authors' code)
  })
  c.hvi = ml_collections.ConfigDict({
      'num_transitions': 0,  # T > 0: q_0(z_0 | x) refined by T transitions (Huang et al.)
      'hidden': 100,  # ELU units of each transition (the paper gives none; docs/avo.md)
      'avo_a': 0.5,  # hvi_avo: probability of an AVO step (else an ELBO step)
      'start': 'identity',  # the transitions' map at init: identity | stationary (hvi.Refinement)
      'init_scale': 0.01,  # their std at init (plus the floor)
      'min_scale': 1e-3,  # a floor on their std (the noise model needs 0.05 for a stable AVO)
      'context_rank': 32,  # rank of the context -> conditional-head maps (0 = full: slower,
                           # and 1.2-3.0 nats worse on MNIST at learning rate 1e-3; docs/avo.md)
      'decoder_steps': 'all',  # hvi_avo: decoder and q_0 learn in all steps, or 'elbo' steps only
      # The transitions' learning rate over `learning_rate` (0.3 on MNIST: HVI +0.2-0.6 nats
      # and ties the VAE at 80 epochs; HVI-AVO gains on some seeds, not all; docs/avo.md).
      'learning_rate_scale': 1.0,
  })
  # Deterministic warm-up (vae, iwae, hvi_avo): beta on log p(z) - log q rises linearly
  # from beta0 to 1 over the first `steps` steps (`methods.warmup_beta`); 0 steps = off.
  c.warmup = ml_collections.ConfigDict({'steps': 0, 'beta0': 0.01})
  c.dataset = 'embedded'
  c.data_dir = ''  # '' -> $AVI_DATA_DIR
  c.architecture = 'burda'
  c.latent_dim = 0  # 0 = the architecture preset's latent size
  # Decoder rows (particles x batch) per chunk of log p(x | z) in the step, recomputed in the
  # backward pass (`models.map_particle_chunks`): large K x B stays in cache. 0 = unchunked.
  c.decoder_chunk_rows = 1000
  c.epochs = 30
  c.batch_size = 100
  c.learning_rate = 1e-3
  c.schedule = 'constant'  # constant | cosine | burda
  c.adam_eps = 1e-4  # Burda et al.
  c.seed = 0
  c.num_devices = 0  # data-parallel over this many local devices; 0 = all
  c.checkpoint_every_steps = 0  # 0 = at the end of every epoch (unless checkpoint_every_seconds)
  c.checkpoint_every_seconds = 0.0  # > 0: checkpoint when this much wall time has passed
  c.keep_checkpoints = 2  # the newest ones are kept
  c.log_every_steps = 50
  c.eval_every_epochs = 0  # periodic valid/test log-likelihood; 0 = only at the end
  # Model selection on the periodic valid log p(x) (needs eval_every_epochs and a valid
  # split): patience > 0 stops after that many evaluations without a better one, and the
  # final evaluation uses the best-on-valid checkpoint (DIR/best).
  c.early_stopping = ml_collections.ConfigDict({
      'patience': 0,
      # The valid log p(x) that selects: 'is' samples the amortized q (`eval.periodic_*`);
      # 'iw_svi' first refines each point's proposal (`avi.iw_svi`, settings below, a fixed
      # key so that epochs are compared on the same noise), so it scores the decoder, not
      # the encoder. They pick different epochs once the encoder overfits (docs/air.md).
      'estimator': 'is',
      'iw_svi': {'num_points': 500, 'steps': 100, 'k': 5, 'learning_rate': 3e-2,
                 'num_samples': 500},
  })

  c.eval = ml_collections.ConfigDict()
  c.eval.num_samples = 5000  # K of the importance-sampling log-likelihood
  c.eval.periodic_num_samples = 100  # K of the periodic (per-epoch) estimates
  c.eval.periodic_num_points = 1000
  c.eval.batch_size = 100
  # Particles per chunk: bounds memory for any K; ~10k rows per chunk is fastest on CPU.
  c.eval.chunk_size = 100
  c.eval.iwae_ks = (5, 50)  # E[L_k] estimated from the same particles
  c.eval.splits = ('train', 'valid', 'test')
  c.eval.train_subset = 2000  # the train log-likelihood uses the first N train points
  return c


# Flat keys of earlier releases and the fields they now name; `experiments.train` keeps them
# as flags for one release, and workdirs written with them still load (`from_dict`).
ALIASES = {
    'ciwae_beta': 'ciwae.beta',
    'denoise_sigma': 'air.denoise_sigma',
    'denoise_alpha': 'air.denoise_alpha',
    'encoder_max_norm': 'air.encoder_max_norm',
    'rem_eps': 'rem.eps',
    'rem_covariance': 'rem.covariance',
    'num_transitions': 'hvi.num_transitions',
    'avo_a': 'hvi.avo_a',
}

# What a run's trajectory does not depend on: where data lives, how it is evaluated,
# checkpointed and logged, and how many epochs it lasts (raising --epochs continues the run,
# except under a schedule that depends on the total length, see `trajectory`).
NOT_TRAJECTORY = ('data_dir', 'epochs', 'eval', 'eval_every_epochs', 'num_devices',
                  'checkpoint_every_steps', 'checkpoint_every_seconds', 'keep_checkpoints',
                  'early_stopping',
                  'log_every_steps')


def set_field(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  """config['a.b'] = value for a dotted path."""
  *parents, name = dotted.split('.')
  for parent in parents:
    config = config[parent]
  config[name] = value


def from_dict(settings: dict) -> ml_collections.ConfigDict:
  """A config from a saved `config.to_dict()`, old flat keys (`ALIASES`) included; fields
  added since the run was written keep their defaults."""
  config = get_config()

  def merge(target, values, prefix=''):
    for name, value in values.items():
      if prefix + name in ALIASES:
        set_field(config, ALIASES[prefix + name], value)
      elif isinstance(value, dict) and name in target:
        merge(target[name], value, f'{prefix}{name}.')
      else:
        target[name] = tuple(value) if isinstance(value, list) else value

  with config.unlocked():
    merge(config, settings)
  return config


def trajectory(config: ml_collections.ConfigDict) -> dict:
  """The fields that define a run's model and training trajectory, flattened to dotted keys."""
  flat = _flatten(config.to_dict())
  drop = [k for k in flat if k.split('.')[0] in NOT_TRAJECTORY]
  if config.schedule == 'cosine':  # its decay spans the whole run
    drop.remove('epochs')
  return {k: v for k, v in flat.items() if k not in drop}


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for name, value in d.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f'{prefix}{name}.'))
    else:
      out[prefix + name] = list(value) if isinstance(value, tuple) else value
  return out
