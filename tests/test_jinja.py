"""Chat-template analysis: real benign templates stay quiet, injections are caught."""
# ruff: noqa: E501  (real chat templates are kept verbatim)

from __future__ import annotations

from pathlib import Path

import pytest
from factories import assert_caught, describe, rules_found, scan, write
from payloads import shell

from mlgate import Severity
from mlgate.scan.jinja import template_issues

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
LLAMA31_TOOLS = """{{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not tools_in_user_message is defined %}{%- set tools_in_user_message = true %}{%- endif %}
{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}{%- set system_message = "" %}{%- endif %}
{%- set ns = namespace(found=false) %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}{{- "Environment: ipython\\n" }}{%- endif %}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}
{%- endif %}
{{- system_message }}{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '{"name": "' + tool_call.name + '", "parameters": ' }}{{- tool_call.arguments | tojson }}{{- "}" }}
        {%- set ns.found = true %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}
"""
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and "
    "assistant roles are supported!') }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role "
    "not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == "
    "'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
    "alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == "
    "'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
    "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{'<start_of_turn>model\n'}}{% endif %}"
)
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == "
    "'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}"
    "{{ eos_token }}{% endif %}"
)
QWEN_GENERATION = (
    "{%- for message in messages %}{%- if message.role == 'assistant' %}{% generation %}"
    "{{ message.content }}{% endgeneration %}{%- else %}{{ message.content }}{%- endif %}"
    "{%- if loop.last %}{% break %}{% endif %}{%- endfor %}"
)
BENIGN = [LLAMA3, LLAMA31_TOOLS, CHATML, MISTRAL, GEMMA, PHI3, QWEN_GENERATION]

CMD = shell("jinja")
MALICIOUS = [
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('" + CMD + "').read() }}",
    "{{ cycler.__init__.__globals__.os.popen('" + CMD + "').read() }}",
    "{{ joiner.__init__.__globals__['os'].system('" + CMD + "') }}",
    "{{ lipsum['__glo' + 'bals__']['os'].popen('" + CMD + "') }}",
    "{{ namespace|attr('__init__')|attr('__globals__') }}",
    "{% set a = '__cla' %}{% set b = a ~ 'ss__' %}{{ ''|attr(b) }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ([] | map(attribute='__class__') | list) }}",
    "{{ 'ssalc__'|reverse }}{{ x[('__' ~ 'ssalc'|reverse ~ '__')] }}",
    "{{ self._TemplateReference__context }}",
    "{{ ''|attr('_' * 2 ~ 'class' ~ '_' * 2) }}",
    "{{ (dict(__class__=1)|list)[0] }}",
    "{{ ['__cla', 'ss__']|join }}",
    "{{ x|attr(['', 'class', '']|join('__')) }}",
]


@pytest.mark.parametrize("template", BENIGN)
def test_benign_templates_are_quiet(template: str) -> None:
    issues = template_issues(template)
    assert not [i for i in issues if i.severity >= Severity.MEDIUM], issues


@pytest.mark.parametrize("template", MALICIOUS)
def test_injections_are_caught(template: str) -> None:
    issues = template_issues(template)
    assert any(i.severity >= Severity.HIGH for i in issues), template


def test_deep_and_unparsable_templates_are_bounded(tmp_path: Path) -> None:
    deep = "{{ " + "(" * 20000 + "1" + ")" * 20000 + " }}"
    report = scan(write(tmp_path / "deep.jinja", deep.encode()))
    assert "MLG301" in rules_found(report), describe(report)
    broken = "{{ x.__class__.__mro__ }}{% if %}"  # rejected by Jinja, maybe not by others
    assert_caught(scan(write(tmp_path / "broken.jinja", broken.encode())), "MLG115")
