"""The default training configuration (ml_collections), shared by binaries and notebooks."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """A short IWAE-5 run on the embedded binarized-MNIST subset (the quick start)."""
  c = ml_collections.ConfigDict()
  c.method = 'iwae'
  c.k = 5  # particles per data point in the IWAE bound
  c.num_samples = 1  # M: samples averaged by the VAE's ELBO (and MIWAE/PIWAE's outer M)
  c.ciwae_beta = 0.5  # CIWAE's weight on the ELBO
  c.denoise_sigma = 0.0  # DVAE/DIWAE: std of the Gaussian noise on the encoder input
  c.denoise_alpha = 1.0  # DVAE/DIWAE: weight of the denoising term (0 = VAE/IWAE)
  c.rem_eps = 1e-3  # REM: eps I added to the moment-matched covariance (eq. 23)
  c.rem_covariance = 'weighted'  # REM: 'weighted' (eq. 22) or 'unweighted' (authors' code)
  c.num_transitions = 0  # T > 0: HVI, q_0(z_0 | x) refined by T transitions (Huang et al.)
  c.avo_a = 0.5  # hvi_avo: probability of an AVO step (else an ELBO step)
  c.dataset = 'embedded'
  c.data_dir = ''  # '' -> $AVI_DATA_DIR
  c.architecture = 'burda'
  c.latent_dim = 0  # 0 = the architecture preset's latent size
  c.encoder_max_norm = 0.0  # H > 0: weight-normalized inference (WNI), ||w_i|| <= H
  c.epochs = 30
  c.batch_size = 100
  c.learning_rate = 1e-3
  c.schedule = 'constant'  # constant | cosine | burda
  c.adam_eps = 1e-4  # Burda et al.
  c.seed = 0
  c.num_devices = 0  # data-parallel over this many local devices; 0 = all
  c.checkpoint_every_steps = 0  # 0 = at the end of every epoch
  c.keep_checkpoints = 2  # the newest ones are kept
  c.log_every_steps = 50
  c.eval_every_epochs = 0  # periodic valid/test log-likelihood; 0 = only at the end

  c.eval = ml_collections.ConfigDict()
  c.eval.num_samples = 5000  # K of the importance-sampling log-likelihood
  c.eval.periodic_num_samples = 100  # K of the periodic (per-epoch) estimates
  c.eval.periodic_num_points = 1000
  c.eval.batch_size = 100
  c.eval.chunk_size = 100  # particles per chunk: bounds memory for any K; ~10k rows per chunk is fastest on CPU
  c.eval.iwae_ks = (5, 50)  # E[L_k] estimated from the same particles
  c.eval.splits = ('train', 'valid', 'test')
  c.eval.train_subset = 2000  # the train log-likelihood uses the first N train points
  return c
