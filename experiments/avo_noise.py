r"""The biased noise model (Huang et al. 2018, Sec. 5.1, Figures 1-2).

  python -m experiments.avo_noise --workdir=runs/avo_noise

trains IWAE with the prior as proposal (K = 500), a Gaussian-encoder VAE and an
HVI VAE with loss-calibrated AVO (T = 10) on draws of the eta = 0.75 arc, then
writes DIR/results.json (exact test log p(x) by quadrature over the 1-d latent,
learned eta, the posterior mass on z < 0 at x = [0, -1] under each learned model
and under its proposal), DIR/figure1.png (data and samples of each learned
model) and DIR/figure2.png (posteriors at x = [-0.3, -1], [0, -1], [0.3, -1]).
"""
import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from avi import distributions as dist  # pylint: disable=wrong-import-position
from avi import hvi  # pylint: disable=wrong-import-position
from avi import noise_model as nm  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_STEPS = flags.DEFINE_integer('steps', 5000, 'Adam steps per model.')
_NUM_DATA = flags.DEFINE_integer('num_data', 20000, 'Training points.')
_NUM_TEST = flags.DEFINE_integer('num_test', 5000, 'Test points of the exact log p(x).')
_NOISE = flags.DEFINE_float('noise_std', 0.1, 'Std of the data noise.')
_IWAE_K = flags.DEFINE_integer('iwae_k', 500, 'Particles of IWAE with the prior proposal.')
_T = flags.DEFINE_integer('num_transitions', 10, 'Transitions T of HVI-AVO.')
_A = flags.DEFINE_float('avo_a', 0.5, 'Probability of an AVO step.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed.')
_MODELS = flags.DEFINE_list('models', list(nm.MODELS), 'Models to fit.')
_DECODER_STEPS = flags.DEFINE_enum('decoder_steps', 'all', ['all', 'elbo'],
                                   'HVI-AVO: steps that train the decoder and q_0.')
_START = flags.DEFINE_enum('start', 'identity', list(hvi.INITS), 'HVI-AVO: transitions at init.')
_INIT_SCALE = flags.DEFINE_float('init_scale', 0.1, 'HVI-AVO: transition std at init.')
_MIN_SCALE = flags.DEFINE_float('min_scale', 0.05, 'HVI-AVO: floor on the transition std.')

ETA = 0.75
QUERIES = ((-0.3, -1.0), (0.0, -1.0), (0.3, -1.0))


def true_posterior(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  z = np.linspace(-8, 8, 4001)
  log_joint = np.asarray(dist.diag_gaussian_log_prob(
      jnp.asarray(x), nm.arc(jnp.asarray(z)[:, None], ETA), _NOISE.value)
                         + dist.standard_normal_log_prob(jnp.asarray(z)[:, None]))
  density = np.exp(log_joint - log_joint.max())
  return z, density / (density.sum() * (z[1] - z[0]))


def main(argv):
  del argv
  key = jax.random.key(_SEED.value)
  data = nm.sample_data(jax.random.fold_in(key, 0), _NUM_DATA.value, ETA, _NOISE.value)
  test = nm.sample_data(jax.random.fold_in(key, 1), _NUM_TEST.value, ETA, _NOISE.value)
  os.makedirs(_WORKDIR.value, exist_ok=True)
  results = {'settings': {name: flags.FLAGS[name].value for name in (
      'steps', 'num_data', 'num_test', 'noise_std', 'iwae_k', 'num_transitions', 'avo_a', 'seed',
      'models', 'decoder_steps', 'start', 'init_scale', 'min_scale')},
             'models': {}}
  fitted = {}
  for name in _MODELS.value:
    settings = nm.Settings(model=name, num_particles=_IWAE_K.value if name == 'iwae_prior' else 1,
                           num_transitions=_T.value, avo_a=_A.value,
                           decoder_steps=_DECODER_STEPS.value, start=_START.value,
                           init_scale=_INIT_SCALE.value, min_scale=_MIN_SCALE.value,
                           steps=_STEPS.value)
    model, params, losses = nm.fit(settings, data, jax.random.fold_in(key, 2))
    fitted[name] = (model, params)
    z, density = nm.posterior(model, params, jnp.array(QUERIES[1]))
    q = nm.proposal_samples(model, params, jnp.array(QUERIES[1]), jax.random.fold_in(key, 3),
                            5000)
    results['models'][name] = {
        'test_log_px': float(jnp.mean(nm.log_px(model, params, test))),
        'eta': float(jnp.exp(params['params']['log_eta'])),
        'posterior_mass_z_below_0': float(jnp.sum(density * (z < 0)) * (z[1] - z[0])),
        'proposal_mass_z_below_0': float(jnp.mean(q < 0)),
        'final_loss': float(jnp.mean(losses[-200:]))}
    print(name, results['models'][name], flush=True)
  z, density = true_posterior(np.array(QUERIES[1]))
  results['true'] = {'eta': ETA, 'posterior_mass_z_below_0': float(
      density[z < 0].sum() * (z[1] - z[0]))}
  with open(os.path.join(_WORKDIR.value, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1)

  fig, axes = plt.subplots(1, len(fitted) + 1, figsize=(3.3 * len(fitted) + 3, 3.3),
                           sharex=True, sharey=True, squeeze=False)
  axes = axes[0]
  axes[0].scatter(*np.asarray(test[:2000]).T, s=1)
  axes[0].set_title('data')
  for ax, (name, (model, params)) in zip(axes[1:], fitted.items()):
    ax.scatter(*np.asarray(nm.sample_x(model, params, jax.random.fold_in(key, 4), 2000)).T, s=1)
    ax.set_title(name)
  fig.tight_layout()
  fig.savefig(os.path.join(_WORKDIR.value, 'figure1.png'), dpi=110)
  plt.close(fig)

  fig, axes = plt.subplots(len(fitted), len(QUERIES), figsize=(11, 2.5 * len(fitted)),
                           sharex=True, squeeze=False)
  for col, query in enumerate(QUERIES):
    z_true, p_true = true_posterior(np.array(query))
    for row, (name, (model, params)) in enumerate(fitted.items()):
      ax = axes[row, col]
      z, density = nm.posterior(model, params, jnp.array(query))
      q = nm.proposal_samples(model, params, jnp.array(query), jax.random.fold_in(key, 5), 5000)
      ax.hist(np.asarray(q), bins=80, range=(-5, 5), density=True, alpha=0.4, label='proposal')
      ax.plot(np.asarray(z), np.asarray(density), label='learned p(z | x)')
      ax.plot(z_true, p_true, 'k--', lw=0.8, label='true p(z | x)')
      ax.set_xlim(-5, 5)
      ax.set_title(f'{name}, x = {list(query)}', fontsize=9)
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(_WORKDIR.value, 'figure2.png'), dpi=110)
  plt.close(fig)


if __name__ == '__main__':
  app.run(main)
