// The official openai npm client against `latent serve` (argv: base URL) for the DeepSeek
// API's features: tool calls (whole and streamed, parallel allowed, a tool result sent
// back), json_object, json_schema strict with a nested schema, chat prefix completion,
// logprobs. Prints one JSON object of what came back; the C++ test checks it.
import OpenAI from 'openai';
const client = new OpenAI({ baseURL: process.argv[2], apiKey: 'sk-test' });
const model = (await client.models.list()).data[0].id;
const tools = [{ type: 'function', function: { name: 'get_weather', strict: true,
  parameters: { type: 'object', properties: { city: { type: 'string' }, when: { type: 'object',
    properties: { day: { type: 'integer' } }, required: ['day'], additionalProperties: false } },
    required: ['city', 'when'], additionalProperties: false } } }];
const out = {};
const messages = [{ role: 'user', content: 'Weather in Oslo?' }];
const whole = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required',
  parallel_tool_calls: true, max_tokens: 80, seed: 5 });
out.whole = { finish: whole.choices[0].finish_reason, calls: whole.choices[0].message.tool_calls };
const stream = await client.chat.completions.create({ model, messages, tools,
  tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 80, seed: 6, stream: true });
const streamed = [];
let finish = null;
for await (const chunk of stream) {
  const c = chunk.choices[0];
  if (!c) continue;
  for (const t of c.delta?.tool_calls ?? []) {
    streamed[t.index] ??= { id: t.id, name: '', arguments: '' };
    streamed[t.index].name += t.function?.name ?? '';
    streamed[t.index].arguments += t.function?.arguments ?? '';
  }
  finish = c.finish_reason ?? finish;
}
out.streamed = { finish, calls: streamed };
const call = whole.choices[0].message.tool_calls[0];
const after = await client.chat.completions.create({ model, max_tokens: 3, tools, messages: [...messages,
  whole.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"rain": true}' }] });
out.after_tool = { finish: after.choices[0].finish_reason, prompt_tokens: after.usage.prompt_tokens };
const jo = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'json please' }],
  response_format: { type: 'json_object' }, max_tokens: 40, seed: 7 });
out.json_object = jo.choices[0].message.content;
const js = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'a user' }],
  max_tokens: 60, seed: 8, response_format: { type: 'json_schema', json_schema: { name: 'user', strict: true,
    schema: { type: 'object', properties: { name: { type: 'string' }, tags: { type: 'array',
      items: { type: 'object', properties: { k: { type: 'string', enum: ['a', 'b'] } }, required: ['k'],
        additionalProperties: false }, maxItems: 2 } }, required: ['name', 'tags'], additionalProperties: false } } } });
out.json_schema = js.choices[0].message.content;
const beta = new OpenAI({ baseURL: process.argv[2].replace(/\/v1$/, '/beta'), apiKey: 'sk-test' });
const prefix = await beta.chat.completions.create({ model, max_tokens: 4, temperature: 0, messages: [
  { role: 'user', content: 'loop' }, { role: 'assistant', content: 'for i in', prefix: true }] });
out.prefix = { content: prefix.choices[0].message.content, finish: prefix.choices[0].finish_reason };
const lp = await client.chat.completions.create({ model, messages, max_tokens: 4, logprobs: true, top_logprobs: 2 });
out.logprobs = { n: lp.choices[0].logprobs.content.length, top: lp.choices[0].logprobs.content[0].top_logprobs.length,
  completion_tokens: lp.usage.completion_tokens };
console.log(JSON.stringify(out));
