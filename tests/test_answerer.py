"""The deterministic reader answers from memory text only, and abstains without support."""

from taskmem_nodes.answerer import LexicalAnswerer
from taskmem_nodes.records import MemoryRecord

MEMORIES = [
    MemoryRecord("m1", "c1", 0, 10, "A man in a dark coat puts the red mug on the kitchen table."),
    MemoryRecord("m2", "c2", 10, 20, "Two women walk through the hall. One carries a blue bag."),
]


def test_multiple_choice_picks_the_supported_option():
    answer = LexicalAnswerer().answer("Where is the red mug?", ["in the hall", "on the kitchen table", "outside"],
                                      MEMORIES)
    assert answer.answered and answer.option_index == 1 and answer.memory_ids == ("m1",)


def test_multiple_choice_abstains_without_clear_support():
    answer = LexicalAnswerer().answer("What colour is the car?", ["green", "yellow"], MEMORIES)
    assert not answer.answered and answer.option_index == -1
    assert answer.memory_ids == ("m1", "m2")  # abstentions cite what was consulted


def test_open_question_returns_the_best_sentence_or_abstains():
    reader = LexicalAnswerer(min_overlap=2)
    answer = reader.answer("Which bag did she carry?", [], MEMORIES)
    assert answer.answered and answer.text == "One carries a blue bag." and answer.memory_ids == ("m2",)
    assert not reader.answer("Did a dog bark?", [], MEMORIES).answered
    assert not reader.answer("Where is the mug?", [], []).answered


def at(memory_id, start, text):
    return MemoryRecord(memory_id, memory_id, start, start + 10, text)


def test_order_questions_use_the_time_of_the_statement():
    memories = [
        at("a", 0, "kitchen. person 1 picks up the green ball."),
        at("b", 10, "hall. person 1 puts the green ball on the sofa. person 3 enters."),
        at("c", 20, "office. person 2 puts the green ball on the desk."),
    ]
    reader = LexicalAnswerer()
    first = reader.answer("Which happened first?", ["person 3 enters", "person 1 picks up the green ball"], memories)
    assert first.answered and first.option_index == 1 and first.memory_ids == ("a",)
    last = reader.answer("Where was the green ball last seen?", ["on the sofa", "on the desk", "on the bed"], memories)
    assert last.answered and last.text == "on the desk" and last.memory_ids == ("c",)
    # only one of the events is in memory: the order is unknown, so the overlap reader decides (and abstains here)
    unknown = reader.answer("Which happened first?", ["person 3 enters", "person 4 leaves"], memories[:1])
    assert not unknown.answered
