// Tool handlers of the research agent. Each gets ctx.input (the model's validated arguments),
// ctx.idempotencyKey (stable for this call across retries and resumes), ctx.signal and ctx.log.
// The "web" here is a tiny offline corpus so the example runs anywhere.
const PAGES = {
  "https://tides.example/moon": "Tides are the rise and fall of sea levels caused by the Moon's gravity.",
  "https://tides.example/spring": "Spring tides happen when the Sun and Moon align, giving larger tidal ranges.",
  "https://tides.example/neap": "Neap tides happen at quarter moons, when the tidal range is smallest.",
};

export async function search(ctx) {
  ctx.log(`searching for ${ctx.input.query}`);
  return Object.keys(PAGES).map((url, i) => ({ title: `Result ${i + 1} for ${ctx.input.query}`, url }));
}

export async function readPage(ctx) {
  // A durable step inside a tool: on a resume, a page already read is not fetched again.
  return ctx.step("fetch", async () => {
    const text = PAGES[ctx.input.url];
    if (text === undefined) throw new Error(`no page at ${ctx.input.url}`);
    return { url: ctx.input.url, text: `PAGE: ${text}` };
  });
}
