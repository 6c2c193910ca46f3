"""The recurrent time loop on one thread (:class:`snn_egru.training.lm_eval.RecurrentThreads`):
the thread count switches where it should, and training and evaluation give the same bits
with one or two threads."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.snn_egru.conftest import deterministic_tiny_lm


def _tiny_model():
    from snn_egru.models.lm import EGRULanguageModel

    torch.manual_seed(0)
    return EGRULanguageModel(deterministic_tiny_lm(30))


def test_time_loop_forward_and_backward_run_on_one_thread() -> None:
    from snn_egru.training.lm_eval import RecurrentThreads

    torch.set_num_threads(2)  # the autouse fixture restores the count
    model = _tiny_model()
    seen: dict[str, int] = {}

    def note(name):
        def hook(_grad):
            seen.setdefault(name, torch.get_num_threads())

        return hook

    def inside(_module, args):
        seen["forward"] = torch.get_num_threads()
        args[0].register_hook(note("input grad"))

    def after(_module, _args, output):
        seen["after forward"] = torch.get_num_threads()
        output[0].register_hook(note("output grad"))

    threads = RecurrentThreads(model, backward=True).install()
    model.rnn.register_forward_pre_hook(inside)  # after ours: sees what ours set
    model.rnn.register_forward_hook(after)
    tokens = torch.randint(0, 30, (6, 3))
    out = model(tokens)
    F.cross_entropy(out.logits.reshape(-1, 30), tokens.reshape(-1)).backward()
    threads.remove()
    assert seen == {"forward": 1, "after forward": 2, "output grad": 1, "input grad": 2}
    assert torch.get_num_threads() == 2
    model(tokens)  # hooks removed: the forward keeps two threads
    assert torch.get_num_threads() == 2


def test_one_thread_model_and_gpu_free_calls_do_nothing() -> None:
    from snn_egru.training.lm_eval import RecurrentThreads

    model = _tiny_model()
    with RecurrentThreads(model, backward=True) as threads:  # fixture: one thread
        assert threads._handles == []
    assert RecurrentThreads(torch.nn.Linear(2, 2)).install()._handles == []


def _train(threads: int):
    from snn_egru.data.text import corpus_from_texts
    from snn_egru.training.lm import lm_training_preset, train_language_model

    torch.set_num_threads(threads)
    words = [f"w{(i * 7) % 23}" if i % 3 else "w1" for i in range(3000)]
    text = " ".join(words) + "\n"
    corpus = corpus_from_texts(text, text[:2000], text[:2000], name="cyclic")
    tc = lm_training_preset("tiny", max_steps=6, eval_every=3, log_every=1, bptt=10)
    tc.save_checkpoints = False
    config = deterministic_tiny_lm(len(corpus.vocabulary))
    result = train_language_model(config, tc, data=corpus, show_progress=False)
    rows = [(r["kind"], r.get("loss"), r.get("perplexity")) for r in result.history]
    weights = [p.detach().clone() for p in result.model.parameters()]
    return rows, weights, torch.get_num_threads()


def test_training_and_evaluation_give_the_same_bits_with_one_or_two_threads() -> None:
    rows_1, weights_1, _ = _train(1)
    rows_2, weights_2, after = _train(2)
    assert after == 2  # the thread count is restored after every step and evaluation
    assert any(kind == "valid" for kind, *_ in rows_2) and any(k == "test" for k, *_ in rows_2)
    assert rows_2 == rows_1
    assert all(torch.equal(a, b) for a, b in zip(weights_1, weights_2))
