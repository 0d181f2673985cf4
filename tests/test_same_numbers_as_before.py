"""The layout change (issue 13) changed no number: a tiny fixed-seed run of every model gives
the metrics and per-epoch losses that the code before it gave (commit 5d5a856, measured on
an AVX-512 machine; the tolerance covers kernel rounding between CPUs, not behaviour)."""

import pytest

BEFORE = {
 "ganomaly": {
  "selected_epoch": 2,
  "val_auprc": 0.361282,
  "test_auprc": 0.328024,
  "test_auroc": 0.540582,
  "losses": [
   {
    "adv": 0.255193,
    "con": 0.944286,
    "d_loss": 0.577255,
    "enc": 0.026554,
    "g_loss": 47.496056
   },
   {
    "adv": 0.328973,
    "con": 0.928671,
    "d_loss": 0.488795,
    "enc": 0.029199,
    "g_loss": 46.791729
   }
  ]
 },
 "egbad": {
  "selected_epoch": 2,
  "val_auprc": 0.306578,
  "test_auprc": 0.206214,
  "test_auroc": 0.277725,
  "losses": [
   {
    "d_loss": 0.891432,
    "e_loss": 1.516467,
    "g_loss": 0.750855,
    "ge_loss": 2.267321
   },
   {
    "d_loss": 0.564324,
    "e_loss": 3.12675,
    "g_loss": 0.915367,
    "ge_loss": 4.042117
   }
  ]
 },
 "anogan": {
  "selected_epoch": 2,
  "val_auprc": 0.306559,
  "test_auprc": 0.206179,
  "test_auroc": 0.277566,
  "losses": [
   {
    "d_fake": 0.503765,
    "d_loss": 0.596462,
    "d_real": 0.611772,
    "g_loss": 0.68565
   },
   {
    "d_fake": 0.513968,
    "d_loss": 0.502925,
    "d_real": 0.755451,
    "g_loss": 0.665634
   }
  ]
 },
 "autoencoder": {
  "selected_epoch": 2,
  "val_auprc": 0.306403,
  "test_auprc": 0.20613,
  "test_auroc": 0.277354,
  "losses": [
   {
    "loss": 0.0
   },
   {
    "loss": 0.0
   }
  ]
 }
}


@pytest.mark.parametrize("model_name", sorted(BEFORE))
def test_tiny_fixed_seed_run_matches_the_code_before_the_layout_change(model_name, tiny_run):
    """The run: conftest.TINY_RUN (epochs 2, batch 32, latent 8, filters 4/8/16), class 3,
    limit 300, seeds 0."""
    _, r = tiny_run(model_name)
    before = BEFORE[model_name]
    assert r["selected_epoch"] == before["selected_epoch"]
    assert r["validation"]["auprc"] == pytest.approx(before["val_auprc"], abs=2e-3)
    assert r["test"]["auprc"] == pytest.approx(before["test_auprc"], abs=2e-3)
    assert r["test"]["auroc"] == pytest.approx(before["test_auroc"], abs=2e-3)
    for row, old in zip(r["history"], before["losses"]):
        if model_name == "autoencoder":  # it logged Keras' empty loss tracker, 0.0, then: a bug
            assert old == {"loss": 0.0} and row["l1_loss"] > 0.1
            continue
        assert {k: row[k] for k in old} == pytest.approx(old, rel=1e-3, abs=1e-5)
