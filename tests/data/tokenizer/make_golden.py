#!/usr/bin/env python3
"""Regenerates spm_v3_golden.json: the ids SentencePiece itself gives for varied strings with
Mistral's v3 vocabulary, the reference tests/unit/client/tokenizer_test.cpp compares against.
Run once by hand (tests never run python):

  apt-get install python3-sentencepiece
  /usr/bin/python3 tests/data/tokenizer/make_golden.py MODEL > tests/data/tokenizer/spm_v3_golden.json

MODEL is mistral-v3.model (mistral-common's mistral_instruct_tokenizer_240323.model.v3), the
SentencePiece model whose vocabulary mistral-v3-vocab-tiny.gguf holds as GGUF metadata.
"""
import json
import sys

import sentencepiece

TEXTS = [
    "",
    "Hello world",
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "a  b   c    d",
    " ",
    "    ",
    "\n",
    "line one\nline two\n\nline four",
    "windows\r\nline ends",
    "\ttabbed\tcolumns\t",
    "Hello, world! How's it going? (Fine.) [ok] {x: 1}; a-b_c/d\\e",
    "!!!???...,,,;;;",
    "0123456789",
    "3.14159 + 2.71828 = 5.85987",
    "Year 2024, page 17 of 305.",
    "café crème brûlée, naïve façade, Ångström",
    "e\u0301 (combining acute) vs \u00e9",
    "Grüße aus München",
    "日本語のテキストです。",
    "中文分词测试：你好，世界！",
    "한국어 텍스트",
    "Привет, мир!",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "emoji 😀🎉👍",
    "family 👨\u200d👩\u200d👧 and flag 🇫🇷",
    "rare CJK 𠀀𪚥 and math 𝔘𝔫𝔦",
    "non\u00a0breaking and zero\u200bwidth",
    "[INST] not parsed as control [/INST]",
    "<s> and </s> are plain text here",
    "def f(x):\n    return x * 2  # comment\n",
    "https://example.com/path?q=1&r=two#frag",
    "antidisestablishmentarianism",
    "ALL CAPS TEXT AND MiXeD cAsE",
    "tokens\u2581with\u2581lower\u2581blocks",
    "mixed 中文 and English and 😀 emoji\nnew line",
]


def main():
    sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
    cases = []
    for text in TEXTS:
        ids = sp.encode(text)
        assert sp.decode(ids) == text or "\u2581" in text, text
        cases.append({"text": text, "ids": ids, "pieces": [sp.id_to_piece(i) for i in ids]})
    json.dump({"model": "mistral-v3.model", "sentencepiece": sentencepiece.__version__,
               "cases": cases}, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
