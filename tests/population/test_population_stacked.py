"""A stacked population trained by hand against the same trials trained one by one (float64,
the digits data, the registry's MLP): the building blocks of population trials."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lit_optim import ClassificationData, ConfigError
from lit_optim.catalog.optimizers import build_optimizer
from lit_optim.population import PopulationUpdate, StackedNetwork
from lit_optim.training.models import build_model

MEMBERS = [
    {"lr": 1e-3, "weight_decay": 0.0},
    {"lr": 3e-3, "weight_decay": 1e-4},
    {"lr": 1e-2, "weight_decay": 1e-3},
    {"lr": 3e-2, "weight_decay": 0.0},
]


@pytest.fixture(scope="module")
def digits():
    data = ClassificationData("digits", batch_size=128)
    data.setup()
    loader = data.train_dataloader()
    loader.sampler.set_epoch(0)
    batches = [(x.double(), y) for x, y in loader]
    vx, vy = data._tensors["val"]
    return batches, vx.double(), vy


def _start():
    torch.manual_seed(0)  # every trial of a study starts from the recipe's seed
    return build_model("mlp", (1, 8, 8), 10, hidden_dims=[32, 16]).double()


def _sequential(batches, member, name="adam", poison_at=None):
    net = _start()
    opt = build_optimizer(name, net.parameters(), **member)
    for step, (x, y) in enumerate(batches):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net


def _population(batches, members, name="adam", poison=None):
    """``poison``: (member, step) whose loss becomes NaN there; it is then dropped."""
    net = StackedNetwork([_start() for _ in members])
    update = PopulationUpdate(name, list(net.parameters()), members)
    alive = list(range(len(members)))
    for step, (x, y) in enumerate(batches):
        losses = StackedNetwork.member_losses(net(x), y)
        if poison is not None and step == poison[1]:
            losses = losses * torch.tensor(
                [float("nan") if m == poison[0] else 1.0 for m in alive], dtype=losses.dtype
            )
        for p in net.parameters():
            p.grad = None
        losses.sum().backward()
        update.step()
        bad = ~torch.isfinite(losses.detach())
        if bool(bad.any()):
            keep = ~bad
            net.keep(keep)
            update.keep(keep, list(net.parameters()))
            alive = [m for m, k in zip(alive, keep.tolist()) if k]
    return net, alive


def test_each_member_of_a_stacked_population_equals_its_sequential_trial(digits):
    batches, vx, vy = digits
    net, _ = _population(batches, MEMBERS)
    logits = net(vx)
    for i, member in enumerate(MEMBERS):
        alone = _sequential(batches, member)
        for name, value in alone.state_dict().items():
            assert torch.allclose(net.member_state_dict(i)[name], value, rtol=0, atol=1e-10), name
        assert torch.equal(logits[i].argmax(1), alone(vx).argmax(1))  # the same val accuracy
    assert not torch.allclose(logits[0], logits[3])


def test_a_member_that_goes_nan_leaves_and_the_others_are_as_without_it(digits):
    batches, _, _ = digits
    poisoned, alive = _population(batches, MEMBERS, poison=(2, 3))
    assert alive == [0, 1, 3] and poisoned.size == 3
    without, _ = _population(batches, [MEMBERS[i] for i in (0, 1, 3)])
    for a, b in zip(poisoned.parameters(), without.parameters()):
        assert torch.equal(a, b)  # bit-identical


def test_members_must_share_a_network_shape():
    with pytest.raises(ConfigError, match="same network shape"):
        StackedNetwork(
            [
                build_model("mlp", (1, 8, 8), 10, hidden_dims=[8]),
                build_model("mlp", (1, 8, 8), 10, hidden_dims=[16]),
            ]
        )
    net = StackedNetwork([_start(), _start()])
    assert copy.deepcopy(net).size == 2
    # emptied (every member left) and filled again by a join: the newcomers alone
    net.keep(torch.tensor([False, False]))
    assert net.size == 0
    newcomer = _start()
    net.join([newcomer])
    assert net.size == 1
    for name, value in newcomer.state_dict().items():
        assert torch.equal(net.member_state_dict(0)[name], value), name


class _Scaled(torch.nn.Sequential):  # a Sequential with a forward of its own: not a plain chain
    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize("hidden", [[], [32, 16]])
def test_the_batched_matmul_path_computes_what_vmap_computes(digits, hidden):
    batches, _, _ = digits
    x, y = batches[0]
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(
            build_model("mlp", (1, 8, 8), 10, hidden_dims=hidden, activation="gelu").double()
        )
    chained, vmapped = StackedNetwork(nets), StackedNetwork(nets)
    assert chained._chain is not None
    vmapped._chain = None  # the general path: torch.vmap over functional_call
    results = []
    for net in (chained, vmapped):
        logits = net(x)
        StackedNetwork.member_losses(logits, y).sum().backward()
        results.append((logits.detach(), [p.grad for p in net.parameters()]))
    (a, grads_a), (b, grads_b) = results
    assert torch.allclose(a, b, rtol=0, atol=1e-12)
    for ga, gb in zip(grads_a, grads_b):
        assert torch.allclose(ga, gb, rtol=0, atol=1e-12)
    for i, net in enumerate(nets):  # and each member is its own network
        assert torch.allclose(a[i], net(x), rtol=0, atol=1e-12)


def test_modules_that_are_not_a_plain_linear_chain_run_through_vmap():
    cnn = [build_model("cnn", (1, 8, 8), 10) for _ in range(2)]
    custom = [_Scaled(torch.nn.Flatten(), torch.nn.Linear(64, 10)) for _ in range(2)]
    for nets in (cnn, custom):
        stacked = StackedNetwork(nets)
        assert stacked._chain is None
        x = torch.randn(5, 1, 8, 8)
        for net in nets:
            net.eval()
        stacked.eval()
        out = stacked(x)
        for i, net in enumerate(nets):
            assert torch.allclose(out[i], net(x), atol=1e-5)


def test_linear_weights_are_stored_input_major_and_stay_so_after_a_drop():
    # The batched matmul reads weight.transpose(1, 2): contiguous, so neither the forward nor
    # the gradient's accumulation copies a [N, in, out] tensor each step.
    nets = [build_model("mlp", (64,), 10, hidden_dims=[16]) for _ in range(3)]
    net = StackedNetwork(nets)
    update = PopulationUpdate(
        "adam", list(net.parameters()), MEMBERS[:3], decay=[p.ndim > 2 for p in net.parameters()]
    )

    def weights():  # {name in the member network: stacked weight}
        return {name: t for name, t in net.stacked().items() if name.endswith("weight")}

    def step():
        StackedNetwork.member_losses(
            net(torch.randn(5, 64)), torch.randint(0, 10, (5,))
        ).sum().backward()
        update.step()

    step()
    for name, w in weights().items():
        assert w.shape[1:] == nets[0].get_parameter(name).shape  # nn.Linear's [out, in]
        assert w.transpose(1, 2).is_contiguous() and not w.is_contiguous()
        assert w.grad.stride() == w.stride()
    kept = net.member_state_dict(2)
    net.keep(torch.tensor([True, False, True]))
    update.keep(torch.tensor([True, False, True]), list(net.parameters()))
    step()
    for w in weights().values():
        assert w.shape[0] == 2 and w.transpose(1, 2).is_contiguous()
    for state, p in zip(update.state, net.parameters()):
        assert all(v.stride() == p.stride() for v in state.values())
    # A member's state_dict is nn.Linear's own layout, loadable as is.
    assert all(t.is_contiguous() for t in kept.values())
    nets[0].load_state_dict(kept)


@pytest.mark.parametrize(
    "network,kwargs",
    [
        ("mlp", {"hidden_dims": [16, 8], "dropout": 0.5}),
        ("cnn", {"channels": [4], "hidden_dim": 8, "dropout": 0.5}),
    ],
)
def test_dropout_draws_its_own_mask_per_member(network, kwargs):
    torch.manual_seed(0)
    net = build_model(network, (1, 8, 8), 3, **kwargs)
    stacked = StackedNetwork([net, copy.deepcopy(net)])
    assert (stacked._chain is not None) == (network == "mlp")  # the batched-matmul path too
    x = torch.randn(5, 1, 8, 8)
    out = stacked(x)
    assert not torch.allclose(out[0], out[1])  # the same weights, different masks
    stacked.eval()
    out = stacked(x)
    assert torch.equal(out[0], out[1])
