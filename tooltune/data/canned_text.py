"""Hand-written text the builders draw on: refusals, general questions and chit-chat that want no
call, and plausible tool results with a short answer that uses them."""

from __future__ import annotations

import json
import random
from typing import Any

from tooltune.data import coding_requests
from tooltune.data.phrasing import task_phrase
from tooltune.toolspec import ToolSpec

REFUSALS = [
    "None of the available tools can {task}, so I can't do that here.",
    "I don't have a tool that can {task}. The functions I was given do something else.",
    "Sorry, I can't {task} with the tools available to me.",
    "The provided functions don't cover this: none of them can {task}.",
    "I can't help with that using these tools — there is no function to {task}.",
]

GENERAL_QA = [
    ("What's the capital of Australia?", "The capital of Australia is Canberra."),
    ("Who wrote Pride and Prejudice?", "Pride and Prejudice was written by Jane Austen."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    (
        "Write a haiku about autumn leaves.",
        "Red leaves drift and fall,\nwhispering to the cold ground —\nthe year exhales slow.",
    ),
    (
        "Tell me a joke about programmers.",
        "Why do programmers prefer dark mode? Because light attracts bugs.",
    ),
    ("What does HTTP stand for?", "HTTP stands for HyperText Transfer Protocol."),
    (
        "Explain what a closure is in one sentence.",
        "A closure is a function that remembers the variables from the scope where it was created.",
    ),
    (
        "Can you recommend a good book on habits?",
        "Atomic Habits by James Clear is a popular, practical choice.",
    ),
    (
        "What is the boiling point of water at sea level in Celsius?",
        "Water boils at 100 degrees Celsius at sea level.",
    ),
    (
        "Summarize the plot of Romeo and Juliet in one line.",
        "Two young lovers from feuding families marry in secret, "
        "and a chain of misunderstandings ends in both their deaths.",
    ),
    (
        "How do I say thank you in Japanese?",
        'You say "arigatou" (ありがとう), or more politely "arigatou gozaimasu".',
    ),
    (
        "What's the difference between a list and a tuple in Python?",
        "A list is mutable and can change after creation; a tuple is immutable.",
    ),
    (
        "Please book me a table for two at a sushi place tonight.",
        "I can't make reservations — I don't have a booking tool here. "
        "A restaurant app or a phone call will do it.",
    ),
    ("Order me a pizza with extra cheese.", "I can't place orders; none of my tools can do that."),
    (
        "Send a text message to my mom saying I'll be late.",
        "I can't send messages — I don't have a messaging tool.",
    ),
    (
        "Set an alarm for 6:30 tomorrow morning.",
        "I can't set alarms from here; please use your phone's clock app.",
    ),
    ("Play some relaxing music.", "I can't play music — I have no media tool available."),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci."),
    ("What's a good name for a golden retriever puppy?", "How about Sunny, Maple or Biscuit?"),
    ("Give me a motivational quote.", '"The secret of getting ahead is getting started." — Mark Twain'),
    (
        "Why is the sky blue?",
        "Sunlight scatters off air molecules, and shorter blue wavelengths "
        "scatter the most (Rayleigh scattering).",
    ),
    (
        "What year did the first moon landing happen?",
        "The first crewed moon landing was in 1969 (Apollo 11).",
    ),
    ("Translate 'good night' into French.", "'Good night' in French is \"bonne nuit\"."),
    (
        "Is a tomato a fruit or a vegetable?",
        "Botanically a tomato is a fruit, though it is cooked like a vegetable.",
    ),
    ("How many continents are there?", "There are seven continents."),
    (
        "Draft a one-line apology for missing a meeting.",
        "Sorry I missed today's meeting — could you share the notes so I can catch up?",
    ),
]

CHITCHAT = [
    ("Hi!", "Hello! How can I help you today?"),
    ("Hello there", "Hi! What can I do for you?"),
    ("Good morning!", "Good morning! What would you like to do?"),
    ("Thanks, that's all I needed.", "You're welcome! Let me know if anything else comes up."),
    ("thank you so much", "Happy to help!"),
    ("What can you do?", "{capabilities}"),
    ("What tools do you have?", "{capabilities}"),
    ("Who are you?", "I'm an assistant that can use a few tools to help with your requests."),
    ("How are you doing today?", "I'm doing well, thanks for asking! What can I help you with?"),
    ("ok cool", "Great! Tell me if you need anything else."),
    ("Never mind, forget it.", "No problem. I'm here if you need me."),
    ("Bye!", "Goodbye! Have a great day."),
    ("lol that's funny", "Glad it made you smile! Anything else I can do?"),
    ("Are you a robot?", "I'm an AI assistant. How can I help?"),
]


def fake_result(rng: random.Random, tool: ToolSpec, args: dict[str, Any]) -> tuple[str, str]:
    """A plausible tool result (the built-in tools' own text form; JSON for others) and a short final
    answer that uses it."""
    if coding_requests.covers(tool):  # the built-in tools' own text output, as the agent will see it
        return coding_requests.result(rng, tool.name, args)
    tp = task_phrase(tool)
    if tp.verb in ("calculate", "compute", "estimate", "count", "measure", "evaluate", "solve", "predict"):
        value = round(rng.uniform(1, 5000), rng.choice([0, 2]))
        value = int(value) if value == int(value) else value
        obj = tp.obj[0].upper() + tp.obj[1:] if tp.obj else "The result"
        return json.dumps({"result": value}), rng.choice(
            [f"The result is {value}.", f"{obj}: {value}.", f"It comes out to {value}."]
        )
    status = rng.choice(["success", "ok"])
    return json.dumps({"status": status, "data": {"summary": f"{tp.obj} ready"}}), rng.choice(
        [
            "Done. The request went through successfully.",
            f"All set — {tp.obj} is ready.",
            "That worked; the tool reported success.",
        ]
    )
