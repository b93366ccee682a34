"""The discriminator of the teacher loop and the bias potential it defines.

A discriminator trained to tell reference frames (label 1) from frames of a CG model (label 0),
with balanced classes, has a logit ``l = log(D / (1 - D))`` that estimates ``log(p_ref / p_cg)``
of its features; adding ``V = -kT l`` to the CG potential moves the CG distribution of those
features towards the reference one.  :class:`Discriminator` computes exactly the function of the
native ``DiscriminatorBiasForce`` (docs/teacher.md):

1. features of each molecule (replica), from molecule-local bead indices
   (:class:`BiasFeatures`): distances ``|x_b - x_a|`` in nm, angles as ``cos(theta)`` at the
   middle bead, dihedrals as the pair ``(cos phi, sin phi)`` (IUPAC sign, as
   :func:`openmmcgml.geometry.compute_dihedrals`), in that order;
2. standardisation ``z = (s - mean) / std`` (``std > 0``);
3. one or more MLPs (an ensemble, e.g. one per round of the teacher), each with its own hidden
   widths and activation, each giving a logit ``l_k(z)``, optionally clamped smoothly to
   ``L_k tanh(l_k / L_k)`` (``L_k > 0``; no clamp when 0), which keeps regions without data from
   growing deep false wells;
4. ``E = -scale * k_B * T * sum over molecules and networks of the clamped logits``.

The networks' logits add: an ensemble that should average rather than add scales each member's
last layer by ``1 / K`` (:meth:`Discriminator.average_members`).

Degenerate geometry.  ``cos(theta) = u.v / sqrt(|u|^2 |v|^2 + DELTA)`` is exact and smooth at
collinear beads (``u.v / (|u||v|) = +-1``); ``DELTA`` (:data:`ANGLE_DELTA`, 1e-24 nm^4) only keeps
coincident beads from dividing by zero.  For a dihedral, with ``X = (b1 x b2).(b2 x b3)`` and
``Y = |b2| b1.(b2 x b3)`` (so ``phi = atan2(Y, X)`` and ``X^2 + Y^2 = |b1 x b2|^2 |b2 x b3|^2``),
the features are ``(X, Y) / sqrt(X^2 + Y^2 + (EPS s)^2 + DELTA)`` with ``s = |b1| |b2|^2 |b3|``,
``EPS`` = :data:`DIHEDRAL_EPSILON` (1e-3) and ``DELTA`` = :data:`DIHEDRAL_DELTA` (1e-30 nm^8, only
for coincident beads): that is ``(cos phi, sin phi)`` times
``rho / sqrt(rho^2 + EPS^2)``, ``rho = sin(theta_1) sin(theta_2)`` of the two bond angles: a
relative change of about ``5e-7 / rho^2`` (1e-6 at rho = 0.7, 1e-4 at rho = 0.07, a bond angle of
176 degrees), going smoothly to ``(0, 0)`` with finite forces as three of the beads become
collinear, where the dihedral is undefined.

Examples
--------
>>> import torch
>>> features = BiasFeatures(distances=[[0, 3]], angles=[[0, 1, 2]], dihedrals=[[0, 1, 2, 3]])
>>> x = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0.1, 0.1, 0.1]], dtype=torch.float64)
>>> features(x).round(decimals=6).tolist()   # distance, cos(90 deg), cos(90 deg), sin(90 deg)
[0.173205, 0.0, 0.0, 1.0]
>>> model = Discriminator(features, hidden=[8], temperature=300.0, clamp=5.0)
>>> model.energy(x).shape
torch.Size([])
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .layers import ACTIVATIONS, Activation

__all__ = ["ANGLE_DELTA", "BOLTZMANN", "DIHEDRAL_DELTA", "DIHEDRAL_EPSILON", "BiasFeatures", "Discriminator"]

#: k_B in kJ/mol/K (OpenMM's value).
BOLTZMANN = 0.00831446261815324
#: nm^4: keeps ``cos(theta)`` of coincident beads finite (0), negligible otherwise.
ANGLE_DELTA = 1e-24
#: Relative regularisation of a dihedral's (cos, sin) near collinear beads (see the module docs).
DIHEDRAL_EPSILON = 1e-3
#: nm^8: keeps a dihedral's normaliser positive for coincident beads (and fits in a float).
DIHEDRAL_DELTA = 1e-30


def _tuples(values, arity: int, name: str) -> np.ndarray:
    array = np.asarray([] if values is None else values)
    if array.size == 0:
        return np.zeros((0, arity), dtype=np.int64)
    if array.dtype.kind not in "iu" and not (array.dtype.kind == "f" and np.array_equal(array, np.round(array))):
        raise ValueError(f"{name} must be integer bead indices (got dtype {array.dtype})")
    if array.ndim != 2 or array.shape[1] != arity:
        raise ValueError(f"{name} must have shape (n, {arity}) (got {array.shape})")
    array = array.astype(np.int64)
    if array.min() < 0:
        raise ValueError(f"{name} hold a negative bead index")
    for row in array:
        if len(set(row.tolist())) != arity:
            raise ValueError(f"{name} {row.tolist()} repeats a bead")
    return array


class BiasFeatures(nn.Module):
    """Internal coordinates of a molecule: distances, cos of angles, (cos, sin) of dihedrals.

    Parameters
    ----------
    distances, angles, dihedrals : array_like of int, shape (n, 2), (n, 3), (n, 4)
        Molecule-local bead tuples; the angle's vertex is its middle bead.

    The output holds ``n_distances + n_angles + 2 n_dihedrals`` values per frame: the distances
    (nm), the angles' cosines, then ``cos phi, sin phi`` of each dihedral in turn.
    """

    def __init__(self, distances=None, angles=None, dihedrals=None):
        super().__init__()
        self.register_buffer("distances", torch.as_tensor(_tuples(distances, 2, "distances")))
        self.register_buffer("angles", torch.as_tensor(_tuples(angles, 3, "angles")))
        self.register_buffer("dihedrals", torch.as_tensor(_tuples(dihedrals, 4, "dihedrals")))
        if self.n_features == 0:
            raise ValueError("a bias needs at least one feature (a distance, angle or dihedral)")

    @property
    def n_features(self) -> int:
        return len(self.distances) + len(self.angles) + 2 * len(self.dihedrals)

    @property
    def n_beads(self) -> int:
        """Beads a molecule must have at least (one more than the largest index)."""
        return 1 + max(int(t.max()) for t in (self.distances, self.angles, self.dihedrals) if t.numel())

    def names(self) -> list:
        """A label per feature, e.g. ``d(0,3)``, ``cos a(0,1,2)``, ``cos t(0,1,2,3)``."""
        labels = [f"d({a},{b})" for a, b in self.distances.tolist()]
        labels += [f"cos a({a},{b},{c})" for a, b, c in self.angles.tolist()]
        for t in self.dihedrals.tolist():
            labels += [f"cos t({','.join(map(str, t))})", f"sin t({','.join(map(str, t))})"]
        return labels

    def forward(self, x: Tensor) -> Tensor:
        """Features (..., n_features) of coordinates (..., n_beads, 3) in nm."""
        if x.shape[-1] != 3 or x.dim() < 2:
            raise ValueError(f"coordinates must have shape (..., n_beads, 3) (got {tuple(x.shape)})")
        if x.shape[-2] < self.n_beads:
            raise ValueError(f"the features refer to bead {self.n_beads - 1} but the molecule has {x.shape[-2]} beads")
        parts = []
        if len(self.distances):
            a, b = self.distances.T
            delta = x[..., b, :] - x[..., a, :]
            parts.append(torch.sqrt((delta * delta).sum(-1)))
        if len(self.angles):
            a, b, c = self.angles.T
            u, v = x[..., a, :] - x[..., b, :], x[..., c, :] - x[..., b, :]
            uu, vv = (u * u).sum(-1), (v * v).sum(-1)
            parts.append((u * v).sum(-1) / torch.sqrt(uu * vv + ANGLE_DELTA))
        if len(self.dihedrals):
            a, b, c, d = self.dihedrals.T
            b1, b2, b3 = x[..., b, :] - x[..., a, :], x[..., c, :] - x[..., b, :], x[..., d, :] - x[..., c, :]
            c12, c23 = torch.linalg.cross(b1, b2, dim=-1), torch.linalg.cross(b2, b3, dim=-1)
            n1, n2, n3 = (b1 * b1).sum(-1), (b2 * b2).sum(-1), (b3 * b3).sum(-1)
            X = (c12 * c23).sum(-1)
            Y = torch.sqrt(n2) * (b1 * c23).sum(-1)
            norm = torch.sqrt(X * X + Y * Y + DIHEDRAL_EPSILON ** 2 * (n1 * n2 * n2 * n3) + DIHEDRAL_DELTA)
            parts.append(torch.stack([X / norm, Y / norm], dim=-1).flatten(-2))
        return torch.cat(parts, dim=-1)


class _Network(nn.Module):
    """One MLP of the ensemble: hidden layers with an activation, then one output (the logit)."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], activation: str, clamp: float):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        if not (clamp >= 0) or not np.isfinite(clamp):
            raise ValueError(f"clamp must be >= 0 (0: none) and finite (got {clamp})")
        widths = [int(w) for w in hidden]
        if any(w < 1 for w in widths):
            raise ValueError(f"hidden widths must be positive (got {list(hidden)})")
        layers, previous = [], n_inputs
        for width in widths:
            layers += [nn.Linear(previous, width), Activation(activation)]
            previous = width
        layers.append(nn.Linear(previous, 1))
        self.layers = nn.Sequential(*layers)
        self.activation, self.hidden, self.clamp = activation, widths, float(clamp)

    def forward(self, z: Tensor) -> Tensor:
        logit = self.layers(z).squeeze(-1)
        if self.clamp > 0:
            logit = self.clamp * torch.tanh(logit / self.clamp)
        return logit


class Discriminator(nn.Module):
    """Features, standardisation and an ensemble of MLPs: the logit of "reference, not CG".

    Parameters
    ----------
    features : BiasFeatures
    hidden : sequence of int
        Hidden widths of the first network (more are added with :meth:`add_network`).
    activation : {"ssp", "tanh", "silu"}
    clamp : float
        ``L`` of the smooth clamp ``L tanh(l / L)`` of the network's logit; 0: no clamp.
    temperature : float
        Kelvin: the bias energy is ``-scale * k_B * T * logit``.
    mean, std : array_like (n_features,), optional
        Standardisation of the features (default 0 and 1); set them from data with
        :meth:`standardize`.
    """

    def __init__(self, features: BiasFeatures, hidden: Sequence[int] = (64, 64), activation: str = "silu",
                 clamp: float = 0.0, temperature: float = 300.0, mean=None, std=None):
        super().__init__()
        if not isinstance(features, BiasFeatures):
            raise TypeError(f"features must be BiasFeatures (got {type(features).__name__})")
        if not (temperature > 0) or not np.isfinite(temperature):
            raise ValueError(f"temperature must be positive and finite (got {temperature})")
        self.features = features
        self.temperature = float(temperature)
        n = features.n_features
        self.register_buffer("mean", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("std", torch.ones(n, dtype=torch.float64))
        self.set_standardization(np.zeros(n) if mean is None else mean, np.ones(n) if std is None else std)
        self.networks = nn.ModuleList()
        self.add_network(hidden, activation, clamp)

    # ------------------------------------------------------------------ building

    @property
    def n_features(self) -> int:
        return self.features.n_features

    def set_standardization(self, mean, std) -> None:
        """Set ``mean`` and ``std`` (n_features,); every std must be positive and finite."""
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (self.n_features,):
                raise ValueError(f"{name} must have shape ({self.n_features},) (got {value.shape})")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} contains NaN or infinite values")
        if np.any(std <= 0):
            raise ValueError(f"std must be positive (feature {int(np.argmin(std))} has {std.min()})")
        self.mean.copy_(torch.as_tensor(mean))
        self.std.copy_(torch.as_tensor(std))

    def standardize(self, frames) -> "Discriminator":
        """Set the standardisation to the features' mean and std over ``frames`` (..., n_beads, 3);
        a feature that does not vary gets std 1."""
        with torch.no_grad():
            s = self.features(torch.as_tensor(np.asarray(frames), dtype=torch.float64)).reshape(-1, self.n_features)
        std = s.std(0).numpy()
        self.set_standardization(s.mean(0).numpy(), np.where(std > 0, std, 1.0))
        return self

    def add_network(self, hidden: Sequence[int] = (64, 64), activation: str = "silu", clamp: float = 0.0) -> nn.Module:
        """Append an ensemble member (its logit adds to the others'); returns it."""
        network = _Network(self.n_features, hidden, activation, clamp)
        dtype = next(self.networks.parameters()).dtype if len(self.networks) else torch.get_default_dtype()
        network.to(dtype)
        self.networks.append(network)
        return network

    def average_members(self) -> None:
        """Scale every network's last layer by ``1 / K``: the ensemble's logit becomes the mean of
        its members' (unclamped) logits rather than their sum.  Call it once, after the last
        member is added; with clamps, each member's clamp is scaled by ``1 / K`` too."""
        k = len(self.networks)
        with torch.no_grad():
            for network in self.networks:
                network.layers[-1].weight.div_(k)
                network.layers[-1].bias.div_(k)
                network.clamp /= k

    # ------------------------------------------------------------------ evaluation

    def _check(self, x: Tensor) -> Tensor:
        if not torch.is_floating_point(x):
            raise ValueError(f"coordinates must be floating point (got {x.dtype})")
        return x

    def logit(self, x: Tensor, member: Optional[int] = None) -> Tensor:
        """The summed (clamped) logits of the networks, or of one ``member``, per molecule:
        shape (...) for coordinates (..., n_beads, 3)."""
        s = self.features(self._check(x))
        dtype = next(self.networks.parameters()).dtype
        z = ((s - self.mean.to(s.dtype)) / self.std.to(s.dtype)).to(dtype)
        networks = self.networks if member is None else [self.networks[member]]
        return sum(network(z) for network in networks).to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.logit(x)

    def energy(self, x: Tensor, scale: float = 1.0, molecules: bool = True) -> Tensor:
        """Bias energy in kJ/mol, ``-scale k_B T logit``: summed over the molecules (every leading
        dimension) when ``molecules``, else per molecule."""
        per_molecule = -float(scale) * BOLTZMANN * self.temperature * self.logit(x)
        return per_molecule.sum() if molecules else per_molecule

    def energy_and_forces(self, x: Tensor, scale: float = 1.0):
        """Total energy (kJ/mol) and forces (kJ/mol/nm, the shape of ``x``)."""
        with torch.enable_grad():
            positions = x.detach().requires_grad_(True)
            energy = self.energy(positions, scale)
            (gradient,) = torch.autograd.grad(energy, positions)
        return energy.detach(), -gradient

    def copy(self) -> "Discriminator":
        return copy.deepcopy(self)

    @property
    def config(self) -> dict:
        """The structure as plain data (features, temperature, each network's hidden widths,
        activation and clamp): :meth:`from_config` and a ``state_dict`` rebuild the discriminator."""
        return {"distances": self.features.distances.tolist(), "angles": self.features.angles.tolist(),
                "dihedrals": self.features.dihedrals.tolist(), "temperature": self.temperature,
                "networks": [{"hidden": list(n.hidden), "activation": n.activation, "clamp": n.clamp}
                             for n in self.networks]}

    @classmethod
    def from_config(cls, config: dict) -> "Discriminator":
        """An untrained discriminator of the structure ``config`` describes (see :attr:`config`)."""
        networks = list(config["networks"])
        if not networks:
            raise ValueError("a discriminator config needs at least one network")
        features = BiasFeatures(config["distances"], config["angles"], config["dihedrals"])
        first = networks[0]
        model = cls(features, first["hidden"], first["activation"], first["clamp"], config["temperature"])
        for network in networks[1:]:
            model.add_network(network["hidden"], network["activation"], network["clamp"])
        return model

    def to_dict(self) -> dict:
        """``{"config": ..., "state_dict": ...}``: plain data and tensors (``torch.load`` with
        ``weights_only=True`` reads it); :meth:`from_dict` rebuilds the discriminator."""
        return {"config": self.config, "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                "dtype": str(next(self.networks.parameters()).dtype).replace("torch.", "")}

    @classmethod
    def from_dict(cls, payload: dict) -> "Discriminator":
        model = cls.from_config(payload["config"])
        model.to(getattr(torch, payload.get("dtype", "float32")))
        model.load_state_dict(payload["state_dict"])
        return model

    # ------------------------------------------------------------------ the native force

    def to_force(self, molecules=None, periodic: bool = False, scale_parameter: str = "discriminatorScale",
                 scale: float = 1.0):
        """The native ``DiscriminatorBiasForce`` computing :meth:`energy` (weights copied in double).

        Parameters
        ----------
        molecules : sequence of sequences of int, optional
            The System particles of each molecule (replica), all of the same length; default: the
            System's particles in order form one molecule.
        periodic : bool
            Whether the features use minimum-image difference vectors.
        scale_parameter, scale
            Name and default value of the global parameter lambda that scales the energy.

        Examples
        --------
        >>> features = BiasFeatures(distances=[[0, 2]], angles=[[0, 1, 2]])
        >>> force = Discriminator(features, hidden=[4]).to_force(molecules=[[0, 1, 2], [3, 4, 5]])
        >>> force.getNumFeatures(), force.getNumMolecules(), force.getNumNetworks()
        (2, 2, 1)
        """
        from openmmcgml.forces import DiscriminatorBiasForce

        force = DiscriminatorBiasForce(self.temperature)
        for a, b in self.features.distances.tolist():
            force.addDistance(a, b)
        for a, b, c in self.features.angles.tolist():
            force.addAngle(a, b, c)
        for a, b, c, d in self.features.dihedrals.tolist():
            force.addDihedral(a, b, c, d)
        activations = {"ssp": force.ShiftedSoftplus, "tanh": force.Tanh, "silu": force.SiLU}
        for network in self.networks:
            k = force.addNetwork(activations[network.activation], network.clamp)
            for layer in network.layers:
                if isinstance(layer, nn.Linear):
                    force.addNetworkLayer(k, *self._layer_arrays(layer))
        force.setStandardization(self.mean.tolist(), self.std.tolist())
        for particles in (molecules or []):
            force.addMolecule([int(p) for p in particles])
        force.setUsesPeriodicBoundaryConditions(bool(periodic))
        force.setScaleParameterName(scale_parameter)
        force.setDefaultScale(float(scale))
        return force

    @staticmethod
    def _layer_arrays(layer: nn.Linear):
        # the force stores inputs x outputs, row-major: the transpose of nn.Linear.weight
        return (layer.weight.detach().double().cpu().T.reshape(-1).tolist(),
                layer.bias.detach().double().cpu().tolist())

    def update_force(self, force, context=None) -> None:
        """Copy the weights, standardisation, clamps and temperature into ``force`` (made by
        :meth:`to_force` from a discriminator of the same shape) and, with ``context``, into the
        Context (``updateParametersInContext``)."""
        force.setTemperature(self.temperature)
        force.setStandardization(self.mean.tolist(), self.std.tolist())
        if force.getNumNetworks() != len(self.networks):
            raise ValueError(f"the force has {force.getNumNetworks()} networks, the discriminator {len(self.networks)}")
        for k, network in enumerate(self.networks):
            force.setNetworkClamp(k, network.clamp)
            layers = [layer for layer in network.layers if isinstance(layer, nn.Linear)]
            if force.getNumNetworkLayers(k) != len(layers):
                raise ValueError(f"network {k} has {force.getNumNetworkLayers(k)} layers in the force, {len(layers)} here")
            for index, layer in enumerate(layers):
                force.setNetworkLayerParameters(k, index, *self._layer_arrays(layer))
        if context is not None:
            force.updateParametersInContext(context)

    @classmethod
    def from_force(cls, force) -> "Discriminator":
        """The discriminator a ``DiscriminatorBiasForce`` computes (float64 weights)."""
        features = BiasFeatures([force.getDistance(i) for i in range(force.getNumDistances())],
                                [force.getAngle(i) for i in range(force.getNumAngles())],
                                [force.getDihedral(i) for i in range(force.getNumDihedrals())])
        names = {force.ShiftedSoftplus: "ssp", force.Tanh: "tanh", force.SiLU: "silu"}
        model = None
        for k in range(force.getNumNetworks()):
            hidden = [force.getNetworkLayerSize(k, l) for l in range(force.getNumNetworkLayers(k) - 1)]
            if force.getNetworkLayerSize(k, force.getNumNetworkLayers(k) - 1) != 1:
                raise ValueError(f"network {k} of the force does not end in one output")
            activation, clamp = names[force.getNetworkActivation(k)], force.getNetworkClamp(k)
            if model is None:
                model = cls(features, hidden, activation, clamp, force.getTemperature()).double()
                network = model.networks[0]
            else:
                network = model.add_network(hidden, activation, clamp)
            with torch.no_grad():
                for index, layer in enumerate(l for l in network.layers if isinstance(l, nn.Linear)):
                    weights = torch.tensor(force.getNetworkLayerWeights(k, index), dtype=torch.float64)
                    layer.weight.copy_(weights.reshape(layer.in_features, layer.out_features).T)
                    layer.bias.copy_(torch.tensor(force.getNetworkLayerBias(k, index), dtype=torch.float64))
        if model is None:
            raise ValueError("the force has no networks")
        model.set_standardization(force.getFeatureMeans(), force.getFeatureStds())
        return model
