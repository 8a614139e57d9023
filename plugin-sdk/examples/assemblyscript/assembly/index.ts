// A relay plugin in AssemblyScript, written against the raw ABI
// (plugin-sdk/ABI.md): it implements filter-message and refuses messages
// whose cmd is "shout" with errorcode "as_no_shouting"; every other message
// passes unchanged. It shows what a non-Go SDK has to provide: the exports,
// the exchange buffer, the record format and the packed result.

// Host imports (module "relay").
@external("relay", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): void;

const ABI_VERSION: i32 = 1;
const BUFFER_SIZE: i32 = 65536;

const VERDICT_CONTINUE: i64 = 0;
const VERDICT_DENY: i64 = 2;

const TAG_CMD: u16 = 33;
const TAG_ERRORCODE: u16 = 20;
const TAG_MESSAGE: u16 = 21;

// Static memory: the exchange buffer and the output record.
const buffer: usize = memory.data(BUFFER_SIZE);
const output: usize = memory.data(256);

export function relay_abi_version(): i32 {
  return ABI_VERSION;
}

// The host asks for a buffer of at least size bytes; this plugin only has
// 64 KiB, so larger messages fail (the host reports plugin_bad_output).
export function relay_buffer(size: i32): i32 {
  if (size > BUFFER_SIZE) return 0;
  return <i32>buffer;
}

// Only filter-message is implemented; relay_hooks is optional but says so
// explicitly.
export function relay_hooks(): i32 {
  return 1 << 1;
}

// writeField appends a field (u16 tag, u32 length, bytes) at out + at and
// returns the new end offset.
function writeField(at: i32, tag: u16, text: string): i32 {
  const bytes = String.UTF8.encode(text);
  const n = bytes.byteLength;
  store<u16>(output + at, tag);
  store<u32>(output + at + 2, n);
  memory.copy(output + at + 6, changetype<usize>(bytes), n);
  return at + 6 + n;
}

function isShout(ptr: usize, len: u32): bool {
  // "shout" in ASCII.
  return len == 5 &&
    load<u8>(ptr) == 0x73 && load<u8>(ptr + 1) == 0x68 && load<u8>(ptr + 2) == 0x6f &&
    load<u8>(ptr + 3) == 0x75 && load<u8>(ptr + 4) == 0x74;
}

export function relay_filter_message(len: i32): i64 {
  let at: usize = buffer;
  const end: usize = buffer + <usize>len;
  while (at + 6 <= end) {
    const tag = load<u16>(at);
    const n = load<u32>(at + 2);
    const value = at + 6;
    if (value + n > end) break;
    if (tag == TAG_CMD && isShout(value, n)) {
      const note = "refused a shout";
      const noteBytes = String.UTF8.encode(note);
      hostLog(2, changetype<usize>(noteBytes), noteBytes.byteLength);
      let outLen = writeField(0, TAG_ERRORCODE, "as_no_shouting");
      outLen = writeField(outLen, TAG_MESSAGE, "no shouting, please");
      return (VERDICT_DENY << 56) | (<i64>outLen << 32) | <i64>output;
    }
    at = value + n;
  }
  return VERDICT_CONTINUE << 56;
}
