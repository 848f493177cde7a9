"""Meta-gradients against explicit float64 computations: MAML (second order), FOMAML (first order), ANIL (head-only
inner loop), Meta-SGD (learnable inner rates) and prototypical logits."""

import copy

import pytest
import torch
from torch.func import functional_call

from medtl.config import MetaConfig
from medtl.meta.methods import build_meta_method
from medtl.meta.methods.protonet import prototype_logits, prototypes
from medtl.models import create_model

LR = 0.3


def episode(seed=0):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64)
    query = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    return support, labels, query, torch.tensor([0, 1, 0, 1])


def tiny_model():
    torch.manual_seed(0)
    return create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none").double()


def per_task_bn(model):
    for layer in model.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.track_running_stats = False
    model.train()


def in_float64(method):
    """The method's inner rates in float64 like the model (exactly LR, not float32's nearest value)."""
    for module in method.modules():
        module.double()
        module.rates.data.fill_(LR)


def method_gradients(name, steps=1, learn=False):
    model = tiny_model()
    method = build_meta_method(name, model, MetaConfig(inner_steps=steps, inner_lr=LR, learn_inner_lr=learn))
    in_float64(method)
    sx, sy, qx, qy = episode()
    loss, _ = method.episode_loss(model, sx, sy, qx, qy)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    rate_grad = method.rates.rates.grad.clone() if learn else None
    return grads, rate_grad, float(loss.detach())


def explicit(second_order: bool, steps=1, head_only=False):
    """MAML written out with torch.autograd.grad: theta' = theta - lr * dL_s/dtheta, then dL_q(theta')/dtheta."""
    model = tiny_model()
    per_task_bn(model)
    sx, sy, qx, qy = episode()
    params = {n: p for n, p in model.named_parameters()}
    adapted_keys = [n for n in params if n.startswith("head.")] if head_only else list(params)
    fast = dict(params)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(functional_call(model, fast, (sx,)), sy)
        grads = torch.autograd.grad(loss, [fast[k] for k in adapted_keys], create_graph=second_order)
        fast = {**fast, **{k: fast[k] - LR * g for k, g in zip(adapted_keys, grads)}}
    query_loss = torch.nn.functional.cross_entropy(functional_call(model, fast, (qx,)), qy)
    return dict(zip(params, torch.autograd.grad(query_loss, list(params.values())))), float(query_loss.detach())


@pytest.mark.parametrize("steps", [1, 2])
def test_maml_meta_gradient_equals_the_explicit_second_order_computation(steps):
    got, _, loss = method_gradients("maml", steps)
    want, want_loss = explicit(second_order=True, steps=steps)
    assert loss == pytest.approx(want_loss, abs=1e-10)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-6, msg=name)
    first_order, _ = explicit(second_order=False, steps=steps)
    gap = max(float((want[n] - first_order[n]).abs().max()) for n in want)
    assert gap > 1e-4, "the second-order terms must matter here, or this test could not tell MAML from FOMAML"


def test_fomaml_gradient_is_the_query_gradient_at_the_adapted_parameters():
    got, _, _ = method_gradients("fomaml")
    want, _ = explicit(second_order=False)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-6, msg=name)


def test_anil_adapts_the_head_only_and_its_gradient_matches_the_explicit_one():
    got, _, _ = method_gradients("anil", steps=2)
    want, _ = explicit(second_order=True, steps=2, head_only=True)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-6, msg=name)
    # the inner loop leaves the encoder as it is: adapting to a support set changes only the head's output
    model = tiny_model()
    method = build_meta_method("anil", model, MetaConfig(inner_steps=3, inner_lr=LR))
    in_float64(method)
    before = copy.deepcopy(model.state_dict())
    sx, sy, qx, _ = episode()
    logits = method.adapt_and_predict(model, sx, sy, qx, 3, training=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    per_task_bn(model)
    features = model.encode(qx).detach()
    assert not torch.allclose(logits, model.head.fc(features)), "the head adapted"
    # the adapted head on the unchanged encoder's features: the explicit head-only inner loop gives the same logits
    weight, bias = model.head.fc.weight.detach(), model.head.fc.bias.detach()
    support_features = model.encode(sx).detach()
    for _ in range(3):
        weight, bias = weight.clone().requires_grad_(), bias.clone().requires_grad_()
        loss = torch.nn.functional.cross_entropy(support_features @ weight.T + bias, sy)
        dw, db = torch.autograd.grad(loss, [weight, bias])
        weight, bias = (weight - LR * dw).detach(), (bias - LR * db).detach()
    torch.testing.assert_close(logits.detach(), features @ weight.T + bias, atol=1e-8, rtol=0)


def test_meta_sgd_learns_each_tensors_inner_rate_by_its_exact_gradient():
    _, rate_grad, _ = method_gradients("maml", learn=True)
    model = tiny_model()
    per_task_bn(model)
    sx, sy, qx, qy = episode()
    params = dict(model.named_parameters())
    rates = torch.full((len(params),), LR, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(functional_call(model, params, (sx,)), sy)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    fast = {k: v - rates[i] * g for i, ((k, v), g) in enumerate(zip(params.items(), grads))}
    query_loss = torch.nn.functional.cross_entropy(functional_call(model, fast, (qx,)), qy)
    (want,) = torch.autograd.grad(query_loss, [rates])
    torch.testing.assert_close(rate_grad.double(), want, atol=1e-6, rtol=1e-6)


def test_prototypical_logits_are_negative_squared_distances_to_class_means():
    g = torch.Generator().manual_seed(1)
    support, query = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g,
                                                                                     dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    centres = prototypes(support, labels, 3)
    for c in range(3):
        torch.testing.assert_close(centres[c], support[labels == c].mean(0))
    logits = prototype_logits(query, centres)
    for i in range(3):
        for c in range(3):
            assert float(logits[i, c]) == pytest.approx(-float(((query[i] - centres[c]) ** 2).sum()), abs=1e-10)
    # through the method: the encoder's pooled features of support and query, per-task BatchNorm
    model = tiny_model()
    method = build_meta_method("protonet", model, MetaConfig())
    sx, sy, qx, _ = episode()
    got = method.adapt_and_predict(model, sx, sy, qx, 1, training=False)
    per_task_bn(model)
    want = prototype_logits(model.encode(qx), prototypes(model.encode(sx), sy, 2))
    torch.testing.assert_close(got, want.detach(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("backbone,dims", [("tiny-resnet", 3), ("tiny-vit", 2), ("tiny-segresnet", 3)])
def test_every_method_trains_2d_and_3d_cnns_and_transformers(backbone, dims):
    """A second-order meta-gradient through attention needs attention's plain kernel (the fused one has no second
    derivative); 3D episodes go through the same functional path."""
    shape = {"tiny-resnet": (8, 1, 8, 16, 16), "tiny-segresnet": (8, 1, 16, 16, 16)}.get(backbone, (8, 1, 32, 32))
    images, labels = torch.randn(*shape), torch.tensor([0, 1] * 4)
    for name in ("maml", "fomaml", "anil", "protonet"):
        torch.manual_seed(0)
        model = create_model(backbone, dims=dims, num_classes=2, pretrained="none")
        method = build_meta_method(name, model, MetaConfig(inner_steps=1))
        loss, _ = method.episode_loss(model, images[:4], labels[:4], images[4:], labels[4:])
        loss.backward()
        grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), (backbone, name)
        assert any(float(g.abs().sum()) > 0 for g in grads), (backbone, name)
