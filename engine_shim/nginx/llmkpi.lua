-- llmkpi's nginx data plane: what engine_shim/proxy.py does, beside nginx's C relay.
--
-- For POST /v1/completions and /v1/chat/completions: resolve the tenant, ask the engine
-- for usage in the stream (and strip the usage chunk again when the client did not ask),
-- time every SSE event that carries a token, note finish reason, response id, usage and
-- outcome, inject traceparent, and leave one journal line per request in $llmkpi_record
-- (nginx's access_log writes it: docs/record-contract.md). Everything else passes through.
-- engine_shim/nginx_plane.py renders the config and passes the settings as JSON.

local ffi = require "ffi"
local cjson = require "cjson.safe"

local M = { inflight = {} }  -- request id -> ctx until its log phase (ngx.ctx does not
                             -- survive the internal redirect to the 502 page)

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } llmkpi_timespec;
int clock_gettime(int clk_id, llmkpi_timespec *tp);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int RAND_bytes(unsigned char *buf, int num);
]]

local C = ffi.C
local ts = ffi.new("llmkpi_timespec")
local digest = ffi.new("unsigned char[32]")
local random = ffi.new("unsigned char[16]")
local CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
local find, sub, byte, format, concat = string.find, string.sub, string.byte, string.format,
    table.concat
local re_find = ngx.re.find
local null = cjson.null

local settings = {
    salt = "", aliases = {}, tenant_header = "X-Tenant", feature_header = "X-Feature",
    pod = "", sample_ratio = 1.0, upstream = "", max_capture = 16 * 1024 * 1024,
    capture_content = false, content_limit = 65536, secret_digest = "",
}
local key_cache = {}  -- bearer key -> tenant, per worker (bounded below)
local key_cache_size = 0

local function clock(id)
    C.clock_gettime(id, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local HEX = {}
for i = 0, 255 do HEX[i] = format("%02x", i) end

local function hex(buffer, n)
    local out = {}
    for i = 0, n - 1 do out[i + 1] = HEX[buffer[i]] end
    return concat(out)
end

local function random_hex(bytes)
    C.RAND_bytes(random, bytes)
    return hex(random, bytes)
end

function M.init(path)
    local handle = assert(io.open(path, "rb"))
    local doc = assert(cjson.decode(handle:read("*a")))
    handle:close()
    for k, v in pairs(doc) do settings[k] = v end
end

-- at most `limit` bytes of `text`, never cutting a UTF-8 character in two
local function clip(text, limit)
    if #text <= limit then return text end
    local cut = limit
    while cut > 0 do
        local b = byte(text, cut + 1)
        if b < 0x80 or b >= 0xC0 then break end  -- the next byte starts a character
        cut = cut - 1
    end
    return sub(text, 1, cut)
end

-- tenancy: as engine_shim/tenancy.py -----------------------------------------------------

local function hash_key(key)
    local material = settings.salt .. "\0" .. key
    C.SHA256(material, #material, digest)
    return "key-" .. sub(hex(digest, 32), 1, 16)
end

-- the tenant header is honoured only from a trusted sender (engine_shim/tenancy.py)
local function trusted(headers)
    if ngx.var.llmkpi_trusted_peer == "1" then return true end
    if settings.secret_digest == "" then return false end
    local given = headers["x-llmkpi-tenant-secret"]
    if type(given) ~= "string" or given == "" then return false end
    C.SHA256(given, #given, digest)
    return hex(digest, 32) == settings.secret_digest
end

-- the tenant, and the header's tenant when it was refused
local function tenant_of(headers)
    local auth = headers["authorization"]
    local key = nil
    if type(auth) == "string" then
        local scheme, token = auth:match("^(%S+)%s+(.-)%s*$")
        if scheme and scheme:lower() == "bearer" and token ~= "" and token ~= "EMPTY" then
            key = token
        end
    end
    local hashed = nil
    if key then
        hashed = key_cache[key]
        if not hashed then
            hashed = hash_key(key)
            if key_cache_size > 10000 then key_cache, key_cache_size = {}, 0 end
            key_cache[key], key_cache_size = hashed, key_cache_size + 1
        end
        local alias = settings.aliases[hashed]
        if alias then return alias end
    end
    local decided = hashed or "anonymous"
    local header = headers[settings.tenant_header]
    if type(header) == "table" then header = header[1] end
    if type(header) == "string" then
        header = clip(header:match("^%s*(.-)%s*$"), 64)
        if header ~= "" then
            if trusted(headers) then return header end
            if header ~= decided then return decided, header end
        end
    end
    return decided
end

local refused_count = 0  -- per worker, for the log only (the count is on /metrics)

-- trace context: as engine_shim/tracecontext.py ------------------------------------------

local function span_id()
    while true do
        local id = random_hex(8)
        if id ~= "0000000000000000" then return id end
    end
end

local function sampled_by_ratio(trace_id, ratio)
    if ratio >= 1.0 then return true end
    if ratio <= 0.0 then return false end
    return tonumber(sub(trace_id, 17), 16) < ratio * 2 ^ 64
end

local function trace_of(header)
    local id = span_id()
    if type(header) == "string" then
        local v, t, p, f = header:lower():match(
            "^%s*(%x%x)%-(" .. ("%x"):rep(32) .. ")%-(" .. ("%x"):rep(16) .. ")%-(%x%x)%s*$")
        if v and v ~= "ff" and t ~= ("0"):rep(32) and p ~= ("0"):rep(16) then
            return t, id, p, tonumber(f, 16) % 2 == 1
        end
    end
    local trace = random_hex(16)
    return trace, id, nil, sampled_by_ratio(trace, settings.sample_ratio)
end

-- the request ---------------------------------------------------------------------------

local BIG_BODY = 4 * 1024 * 1024

local function read_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body then return body end
    local file = ngx.req.get_body_file()  -- larger than client_body_buffer_size
    if not file then return "" end
    local handle = io.open(file, "rb")
    if not handle then return "" end
    body = handle:read("*a")
    handle:close()
    return body
end

-- Ask for usage in the stream; true when the client had not asked itself. The body is
-- changed as little as possible: the option is inserted before the first key, so the
-- prompt's bytes pass untouched (a client's own stream_options is merged via cjson).
local function ensure_stream_usage(body, doc)
    local options = doc.stream_options
    if type(options) == "table" and options.include_usage == true then return body, false end
    if options == nil then
        local s, e = find(body, "^%s*{")
        return sub(body, 1, e) .. '"stream_options":{"include_usage":true},' .. sub(body, e + 1),
            true
    end
    local merged = type(options) == "table" and options or {}
    merged.include_usage = true
    doc.stream_options = merged
    return cjson.encode(doc), true
end

-- What the headers tell, before the body is read: should reading it fail (a chunked body
-- over client_max_body_size), the record still names the tenant.
local function begin()
    local wall, mono = clock(CLOCK_REALTIME), clock(CLOCK_MONOTONIC)
    local headers = ngx.req.get_headers(100)
    local key = ngx.var.request_id  -- unique per request, whatever the client's id
    local ctx = {
        wall0 = wall, mono0 = mono, gaps = {}, tokens = 0, stream = false, strip = false,
        is_json = false, model = "unknown", pending = nil, eof = false, extra = {},
        key = key, request_id = key, tenant = "anonymous", feature = "none",
        endpoint = ngx.var.uri,
    }
    ngx.ctx.llmkpi = ctx  -- set first: should anything below fail, the record still leaves
    ngx.var.llmkpi_id = key
    M.inflight[key] = ctx  -- found again after an internal redirect (502 and 413 pages)
    local rid = headers["x-request-id"]
    if type(rid) == "table" then rid = rid[1] end
    if type(rid) == "string" and rid ~= "" then ctx.client_request_id = clip(rid, 128) end
    local refused
    ctx.tenant, refused = tenant_of(headers)
    if refused then
        ctx.extra.tenant_header_refused = "1"
        refused_count = refused_count + 1
        if refused_count == 1 or refused_count % 1000 == 0 then
            ngx.log(ngx.WARN, "tenant header refused from ", ngx.var.remote_addr,
                    " (untrusted sender; ", refused_count, " so far in this worker): billed to ",
                    ctx.tenant, ", not the header's tenant")
        end
    end
    local feature = headers[settings.feature_header]
    if type(feature) == "table" then feature = feature[1] end
    ctx.feature = (type(feature) == "string" and feature ~= "") and clip(feature, 64) or "none"
    local parent = headers["traceparent"]
    if type(parent) == "table" then parent = parent[1] end
    ctx.trace_id, ctx.span_id, ctx.parent_span_id, ctx.sampled = trace_of(parent)
    return ctx
end

function M.start()
    local ctx = begin()
    local body = read_body()
    local doc = nil
    if find(body, "^%s*{") then
        doc = cjson.decode(body)
        if type(doc) ~= "table" then doc = nil end
    end
    if doc then
        ctx.is_json = true
        ctx.stream = doc.stream == true
        if type(doc.model) == "string" and doc.model ~= "" then ctx.model = doc.model end
        if settings.capture_content then  -- opt-in: the span carries the text
            local prompt = doc.messages
            if prompt == nil then prompt = doc.prompt end
            ctx.extra["gen_ai.input.messages"] = clip(cjson.encode(prompt) or "null",
                                                      settings.content_limit)
            ctx.output = {}
        end
        if ctx.stream then
            local changed
            body, changed = ensure_stream_usage(body, doc)
            if changed then
                ctx.strip = true
                ngx.req.set_body_data(body)
            end
        end
    end
    ngx.req.clear_header("Accept-Encoding")  -- measured streams must arrive uncompressed
    ngx.req.set_header("traceparent", format("00-%s-%s-%s", ctx.trace_id, ctx.span_id,
                                             ctx.sampled and "01" or "00"))
    if #body > BIG_BODY then  -- its copies (text, decoded table, edited text) go at once,
        body, doc = nil, nil  -- not whenever the collector gets round to them
        collectgarbage("collect")
    end
end

local function now(ctx)
    return ctx.wall0 + (clock(CLOCK_MONOTONIC) - ctx.mono0)
end

function M.headers()
    local ctx = ngx.ctx.llmkpi
    if not ctx then return end
    ctx.status = ngx.status
    local h = ngx.header
    local kind = h["Content-Type"] or ""
    if type(kind) == "table" then kind = kind[1] end
    ctx.sse = ctx.status == 200 and ctx.stream and kind:find("text/event-stream", 1, true) == 1
        and not h["Content-Encoding"]
    ctx.whole = not ctx.sse and ctx.status < 300 and not h["Content-Encoding"]
    if ctx.sse and ctx.strip then h["Content-Length"] = nil end
    ctx.chunks, ctx.size = {}, 0
end

-- SSE events: as engine_shim/stream.py ----------------------------------------------------

local NEEDS_PARSE = [["(?:usage|error)"\s*:\s*(?!null)|"finish_reason"\s*:\s*"]]
local HAS_TOKEN = [["(?:content|text|reasoning_content)"\s*:\s*"(?!")|"tool_calls"\s*:\s*\[\s*\{]]

local function truthy(v)
    if v == nil or v == null or v == false or v == "" or v == 0 then return false end
    if type(v) == "table" and next(v) == nil then return false end
    return true
end

-- the text a choice adds to the completion (as engine_shim/stream.py's _choice_text)
local function choice_text(choice)
    if type(choice.text) == "string" then return choice.text end
    local delta = choice.delta
    local content = type(delta) == "table" and delta.content or nil
    return type(content) == "string" and content or ""
end

local function event_data(event)
    if sub(event, 1, 6) == "data: " and not find(event, "\r", 1, true) then
        local first = find(event, "\n", 7, true)
        local second = first and find(event, "\n", first + 1, true)
        if not second or second == #event then
            return (sub(event, 7):gsub("\n+$", ""))
        end
    end
    local lines = {}
    for line in event:gmatch("[^\r\n]+") do
        if sub(line, 1, 5) == "data:" then lines[#lines + 1] = sub(line, 6):match("^%s*(.-)%s*$") end
    end
    if #lines == 0 then return nil end
    return concat(lines, "\n")
end

local function token_at(ctx, when)
    ctx.tokens = ctx.tokens + 1
    if not ctx.first then
        ctx.first = when
    elseif ctx.last then
        ctx.gaps[#ctx.gaps + 1] = when - ctx.last
    end
    ctx.last = when
end

-- What one event carries; returns false when it is the usage chunk to strip. Ordinary
-- token chunks are classified from their bytes (the regexes run on the whole event: its
-- "data: " prefix matches neither); only the rest is decoded.
local function inspect(ctx, event, when)
    if byte(event, 7) == 91 and sub(event, 1, 12) == "data: [DONE]" then
        ctx.done = true
        return true
    end
    if ctx.response_id and not ctx.output and not re_find(event, NEEDS_PARSE, "jo") then
        if re_find(event, HAS_TOKEN, "jo") then token_at(ctx, when) end
        return true
    end
    local data = event_data(event)
    if data == "[DONE]" then ctx.done = true end
    if not data or data == "[DONE]" or byte(data, 1) ~= 123 then return true end
    local doc = cjson.decode(data)
    if type(doc) ~= "table" then return true end
    if doc.error ~= nil and doc.choices == nil then
        ctx.extra.stream_error = "1"
        return true
    end
    local choices = type(doc.choices) == "table" and doc.choices or {}
    local token = false
    for _, choice in ipairs(choices) do
        if type(choice) == "table" then
            local delta = choice.delta
            if truthy(choice.text) or (type(delta) == "table" and (truthy(delta.content)
                    or truthy(delta.reasoning_content) or truthy(delta.tool_calls))) then
                token = true
            end
            if ctx.output then ctx.output[#ctx.output + 1] = choice_text(choice) end
            if truthy(choice.finish_reason) then ctx.finish_reason = tostring(choice.finish_reason) end
        end
    end
    if token then token_at(ctx, when) end
    if type(doc.id) == "string" and not ctx.response_id then ctx.response_id = doc.id end
    if type(doc.metrics) == "table" then ctx.engine = doc.metrics end
    if type(doc.usage) == "table" then
        ctx.usage = doc.usage
        if ctx.strip and next(choices) == nil then return false end
    end
    return true
end

local function next_boundary(data, start)
    local a = find(data, "\n\n", start, true)
    local b = find(data, "\r\n\r\n", start, true)
    if a and (not b or a < b) then return a, a + 1 end
    if b then return b, b + 3 end
    return nil
end

local function read_whole(ctx, payload)
    local doc = cjson.decode(payload)
    if type(doc) ~= "table" then return end
    if type(doc.usage) == "table" then ctx.usage = doc.usage end
    if type(doc.metrics) == "table" then ctx.engine = doc.metrics end
    if type(doc.id) == "string" then ctx.response_id = doc.id end
    if type(doc.choices) == "table" then
        for _, choice in ipairs(doc.choices) do
            if type(choice) == "table" and truthy(choice.finish_reason) then
                ctx.finish_reason = tostring(choice.finish_reason)
            end
            if type(choice) == "table" and ctx.output then
                local message = choice.message
                local text = type(message) == "table" and message.content or choice.text
                if type(text) == "string" then ctx.output[#ctx.output + 1] = text end
            end
        end
    end
end

function M.body()
    local ctx = ngx.ctx.llmkpi
    if not ctx then return end
    local chunk, eof = ngx.arg[1], ngx.arg[2]
    if ctx.sse then
        local when = now(ctx)
        if not ctx.pending and sub(chunk, -2) == "\n\n" then
            local first = find(chunk, "\n\n", 1, true)
            if first == #chunk - 1 then  -- one whole event, as engines send a token
                if not inspect(ctx, chunk, when) then
                    ngx.arg[1] = ""  -- the usage chunk we asked for
                    ctx.stripped = true
                end
                if eof then ctx.eof = true end
                return
            end
        end
        local data = ctx.pending and (ctx.pending .. chunk) or chunk
        local start, stripped = 1, false
        local out = nil  -- built only when an event is removed (the usage chunk we added)
        while true do
            local _, e = next_boundary(data, start)
            if not e then break end
            local event = sub(data, start, e)
            if inspect(ctx, event, when) then
                if out then out[#out + 1] = event end
            else
                if not out then out = { sub(data, 1, start - 1) } end
                stripped = true
            end
            start = e + 1
        end
        local rest = start <= #data and sub(data, start) or nil
        if ctx.strip then
            -- bytes after the last whole event wait for the rest of their event, which may
            -- be the usage chunk to remove; the client gets whole events only
            if out or ctx.pending or rest then
                if not out then out = { sub(data, 1, start - 1) } end
                if eof and rest then out[#out + 1] = rest end
                ngx.arg[1] = concat(out)
            end
            ctx.pending = (not eof) and rest or nil
        else
            -- nothing is ever removed: the chunk goes on as it came, the tail is kept only
            -- to read its event once complete
            ctx.pending = (not eof) and rest or nil
        end
        if eof then ctx.eof = true end
        if stripped then ctx.stripped = true end
    else
        if ctx.whole and chunk ~= "" and ctx.size < settings.max_capture then
            ctx.chunks[#ctx.chunks + 1] = chunk
            ctx.size = ctx.size + #chunk
        end
        if eof then
            ctx.eof = true
            if ctx.whole and ctx.size < settings.max_capture then
                read_whole(ctx, concat(ctx.chunks))
            end
            ctx.chunks = nil
        end
    end
end

-- the journal line --------------------------------------------------------------------------

local function str(v)
    if v == nil then return "null" end
    return cjson.encode(tostring(v))
end

local function num(v)
    if v == nil then return "null" end
    return format("%.6f", v)
end

local function int(v)
    if type(v) ~= "number" or v ~= math.floor(v) then return "null" end
    return format("%d", v)
end

local function outcome_of(ctx, status)
    if status == 499 then return "cancelled", 499 end
    if not ctx.status then  -- the engine never answered (or nginx itself failed)
        return "error", status >= 500 and status or 502
    end
    if ctx.sse and not ctx.eof then
        -- the stream ended early: nginx completes the request when the engine broke off,
        -- not when the client left (its status stays the engine's, as on the Python plane)
        if ngx.var.request_completion ~= "OK" then return "cancelled", ctx.status end
        return "error", ctx.status
    end
    if ctx.sse and not ctx.done then  -- ended cleanly but short of [DONE]: the answer is cut
        ctx.extra.stream_incomplete = "1"
        return "error", ctx.status
    end
    if status < 400 then return "ok", status end
    if status < 500 then return "rejected", status end
    return "error", status
end

-- vLLM's per-request metrics (ms) as the record's engine spans (s), as records.engine_timing
-- reads them: a negative, non-number or non-finite value is refused and marked
local ENGINE_TIMINGS = {
    { "queue_time_ms", "queue_time" }, { "time_to_first_token_ms", "prefill_time" },
    { "generation_time_ms", "decode_time" }, { "mean_itl_ms", "time_per_output_token" },
}

local function engine_spans(ctx)
    local metrics, parts = ctx.engine, {}
    if type(metrics) ~= "table" then return "" end
    for _, pair in ipairs(ENGINE_TIMINGS) do
        local value = metrics[pair[1]]
        if value ~= nil and value ~= cjson.null then
            if type(value) ~= "number" or value ~= value or value < 0
                    or value == math.huge then
                ctx.extra.engine_timing_refused = "1"
            else
                parts[#parts + 1] = format(',"%s":%.6f', pair[2], value / 1000)
            end
        end
    end
    return concat(parts)
end

function M.finish()
    local ctx = ngx.ctx.llmkpi
    if not ctx then
        local id = ngx.var.llmkpi_id
        ctx = id and id ~= "" and M.inflight[id] or nil  -- after the 502 page's redirect
        if not ctx then return end
    end
    M.inflight[ctx.key] = nil
    local finish = now(ctx)
    local outcome, status = outcome_of(ctx, ngx.status)
    local usage = ctx.usage or {}
    local prompt, output = int(usage.prompt_tokens), int(usage.completion_tokens)
    local details = usage.prompt_tokens_details
    local cached = type(details) == "table" and int(details.cached_tokens) or "null"
    if output == "null" and ctx.first then output = format("%d", #ctx.gaps + 1) end
    if ctx.output then  -- as the Python plane writes it: json.dumps of one message
        ctx.extra["gen_ai.output.messages"] = '[{"role": "assistant", "content": '
            .. cjson.encode(clip(concat(ctx.output), settings.content_limit)) .. '}]'
    end
    local spans = engine_spans(ctx)  -- before extra is written: it may mark a refusal
    local gaps = {}
    for i, gap in ipairs(ctx.gaps) do gaps[i] = format("%.6f", gap) end
    local extra = {}
    for k, v in pairs(ctx.extra) do extra[#extra + 1] = cjson.encode(k) .. ":" .. cjson.encode(v) end
    ngx.var.llmkpi_record = concat({
        '{"request_id":', str(ctx.request_id), ',"client_request_id":',
        str(ctx.client_request_id), ',"tenant":', str(ctx.tenant),
        ',"model":', str(ctx.model), ',"feature":', str(ctx.feature),
        ',"endpoint":', str(ctx.endpoint), ',"arrival_time":', num(ctx.wall0),
        ',"finish_time":', num(finish), ',"outcome":"', outcome, '","http_status":', status,
        ',"first_token_time":', num(ctx.first), ',"last_token_time":', num(ctx.last),
        ',"inter_token_gaps":[', concat(gaps, ","), '],"prompt_tokens":', prompt,
        ',"output_tokens":', output, ',"cached_prompt_tokens":', cached,
        ',"finish_reason":', str(ctx.finish_reason), ',"streamed":', tostring(ctx.stream),
        ',"body_is_json":', tostring(ctx.is_json), ',"response_id":', str(ctx.response_id),
        ',"trace_id":', str(ctx.trace_id), ',"span_id":', str(ctx.span_id),
        ',"parent_span_id":', str(ctx.parent_span_id),
        ',"trace_sampled":', tostring(ctx.sampled), ',"pod":', str(settings.pod),
        ',"role":', str(settings.role or ""), spans, ',"source":"sidecar","extra":{', concat(extra, ","), '}}'})
end

-- a body over client_max_body_size (nginx refuses it by its Content-Length before the
-- access phase, or while a chunked one is read): 413 in JSON, recorded as rejected
function M.too_large(limit_mib)
    local id = ngx.var.llmkpi_id
    local ctx = (id and id ~= "" and M.inflight[id]) or begin()
    ngx.ctx.llmkpi = ctx
    ctx.status = 413
    ctx.extra.body_too_large = "1"
    ngx.status = 413
    ngx.header["Content-Type"] = "application/json; charset=utf-8"
    ngx.say(cjson.encode({ error = {
        message = "the request body is larger than this sidecar's limit of " .. limit_mib
            .. " MiB (--max-body-mib)", type = "request_too_large", code = 413 } }))
end

-- the engine could not be reached: a JSON error naming it, as the Python plane answers
function M.upstream_down()
    ngx.status = 502
    ngx.header["Content-Type"] = "application/json; charset=utf-8"
    -- the engine's address is internal: nginx's error log names it, the client is not told
    ngx.say(cjson.encode({ error = {
        message = "the inference engine did not answer", type = "upstream_unavailable",
        code = 502 } }))
end

return M
