"""Every trainable variable of the book's composite models is a PyTorch parameter.

On the PyTorch backend Keras registers a model's variables in a dictionary keyed by their paths;
two variables with the same path leave one of them unregistered, so ``zero_grad()`` never
clears its gradient and training silently diverges (RealNVP did, chapter 6). This test builds
small instances of every model class of ``gdlbook`` that holds several networks and checks that
their trainable variables have distinct paths and are all among ``model.parameters()``.
"""

from __future__ import annotations

from backendrun import run_with_backend

CODE = r'''
import json
import keras
import numpy as np
from gdlbook import diffusion, ebm, flows, gans, transformer, vae

def check(model):
    vs = model.trainable_variables
    paths = [v.path for v in vs]
    params = {id(p) for p in model.parameters()}
    unregistered = [v.path for v in vs if id(v.value) not in params]
    return {"n": len(vs), "distinct": len(set(paths)), "unregistered": unregistered[:5]}

out = {}
enc = vae.conv_encoder((28, 28, 1), 2, filters=(8, 16))
dec = vae.conv_decoder(2, (28, 28, 1), filters=(16, 8))
m = vae.VAE(enc, dec); m(np.zeros((2, 28, 28, 1), "float32")); out["VAE"] = check(m)
g = gans.build_mlp(2, 2, hidden=8, depth=2)
d = gans.build_mlp(2, 1, hidden=8, depth=2)
m = gans.WGANGP(g, d, latent_dim=2); out["WGANGP (two MLPs)"] = check(m)
g = gans.build_generator(16, image_size=16, channels=1, width=8)
d = gans.build_discriminator(image_size=16, channels=1, width=8)
m = gans.DCGAN(g, d, latent_dim=16); out["DCGAN"] = check(m)
m = diffusion.DiffusionModel(diffusion.build_unet(16, widths=(8, 16), block_depth=1))
out["DiffusionModel"] = check(m)
m = transformer.build_gpt(11, 8, 2, 2, 16); m(np.zeros((1, 8), "int32")); out["GPT"] = check(m)
e = ebm.build_energy_network(16, 1)
m = ebm.EBM(e, ebm.ReplayBuffer(8, (16, 16, 1))); out["EBM"] = check(m)
m = flows.RealNVP(2, num_layers=4, units=8, hidden_layers=2); m(np.zeros((2, 2), "float32"))
out["RealNVP"] = check(m)
print(json.dumps(out))
'''


def test_every_trainable_variable_is_registered_on_torch():
    out = run_with_backend("torch", CODE, timeout=600)
    for name, r in out.items():
        assert r["n"] > 0, name
        assert r["distinct"] == r["n"], f"{name}: {r['n']} variables, {r['distinct']} paths"
        assert not r["unregistered"], f"{name}: not torch parameters: {r['unregistered']}"
