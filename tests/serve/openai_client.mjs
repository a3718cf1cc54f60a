// The official openai npm client streaming from `latent serve` (argv: base URL).
import OpenAI from 'openai';
const client = new OpenAI({ baseURL: process.argv[2], apiKey: 'sk-test' });
const models = await client.models.list();
let text = '';
const stream = await client.completions.create({ model: models.data[0].id, prompt: 'int main() {', max_tokens: 5, temperature: 0, stream: true });
for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
let chat = '';
const cs = await client.chat.completions.create({ model: models.data[0].id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0, stream: true });
for await (const chunk of cs) chat += chunk.choices[0]?.delta?.content ?? '';
const whole = await client.completions.create({ model: models.data[0].id, prompt: 'int main() {', max_tokens: 5, temperature: 0 });
console.log(JSON.stringify({ model: models.data[0].id, streamed: text, whole: whole.choices[0].text, chat, cached: whole.usage.prompt_tokens_details.cached_tokens }));
