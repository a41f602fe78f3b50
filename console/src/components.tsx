/** The console's small building blocks: status dot, copy button, code blocks, tabs, form fields. */
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import type { Tunnel } from './api';
import { STATE_WORDS } from './format';

type State = Tunnel['status']['state'];

/** A coloured dot with its state in words beside it (colour is never the only signal). */
export function StatusDot({ state, label }: { state: State; label?: string }) {
  return (
    <span class={`status status-${state}`} data-state={state}>
      <span class="dot" aria-hidden="true" />
      <span class="status-word">{label ?? STATE_WORDS[state] ?? state}</span>
    </span>
  );
}

/**
 * Copies `text` to the clipboard and says so (to screen readers too); where the clipboard is not
 * available, selects the text for the customer to copy by hand.
 */
export function CopyButton({
  text,
  label,
  target,
}: {
  text: string;
  label: string;
  target?: () => HTMLElement | null;
}) {
  const [done, setDone] = useState<'copied' | 'select' | undefined>();
  useEffect(() => {
    if (!done) return;
    const timer = setTimeout(() => setDone(undefined), 2500);
    return () => clearTimeout(timer);
  }, [done]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('copied');
    } catch {
      const el = target?.();
      if (el) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const selection = window.getSelection();
        selection?.removeAllRanges();
        selection?.addRange(range);
      }
      setDone('select');
    }
  };
  return (
    <button type="button" class="copy" onClick={copy} aria-label={label}>
      {done === 'copied' ? 'Copied' : done === 'select' ? 'Press Ctrl+C' : 'Copy'}
      <span class="visually-hidden" aria-live="polite">
        {done === 'copied' ? `${label}: copied` : ''}
      </span>
    </button>
  );
}

/** Text to copy, as a block with its copy button; `name` labels both. */
export function CodeBlock({ text, name, testId }: { text: string; name: string; testId?: string }) {
  const ref = useRef<HTMLPreElement>(null);
  return (
    <div class="code">
      <pre ref={ref} data-testid={testId}>
        {text}
      </pre>
      <CopyButton text={text} label={`Copy ${name}`} target={() => ref.current} />
    </div>
  );
}

/** Tabs per the WAI-ARIA pattern: arrow keys move between them. */
export function Tabs({
  tabs,
  label,
}: {
  tabs: { id: string; title: string; body: ComponentChildren }[];
  label: string;
}) {
  const [current, setCurrent] = useState(tabs[0]?.id);
  const base = useId();
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKey = (e: KeyboardEvent, i: number) => {
    const next = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : undefined;
    if (next === undefined) return;
    e.preventDefault();
    const j = (next + tabs.length) % tabs.length;
    setCurrent(tabs[j]?.id);
    refs.current[j]?.focus();
  };
  return (
    <div class="tabs">
      <div role="tablist" aria-label={label}>
        {tabs.map((t, i) => (
          <button
            key={t.id}
            ref={(el) => {
              refs.current[i] = el;
            }}
            type="button"
            role="tab"
            id={`${base}-tab-${t.id}`}
            aria-selected={current === t.id}
            aria-controls={`${base}-panel-${t.id}`}
            tabIndex={current === t.id ? 0 : -1}
            onClick={() => setCurrent(t.id)}
            onKeyDown={(e) => onKey(e, i)}
          >
            {t.title}
          </button>
        ))}
      </div>
      {tabs.map((t) => (
        <div
          key={t.id}
          role="tabpanel"
          id={`${base}-panel-${t.id}`}
          aria-labelledby={`${base}-tab-${t.id}`}
          hidden={current !== t.id}
        >
          {t.body}
        </div>
      ))}
    </div>
  );
}

/** A labelled field with its hint and its error beside it (announced, and tied to the input). */
export function Field({
  label,
  error,
  hint,
  children,
  id,
}: {
  label: string;
  error?: string;
  hint?: string;
  id: string;
  children: (props: {
    id: string;
    'aria-invalid'?: boolean;
    'aria-describedby'?: string;
  }) => ComponentChildren;
}) {
  const described = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children({ id, 'aria-invalid': error ? true : undefined, 'aria-describedby': described || undefined })}
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {error && (
        <p class="field-error" id={`${id}-error`} role="alert" data-field-error={id}>
          {error}
        </p>
      )}
    </div>
  );
}

/** A message box: `error` is announced at once, `info` politely. */
export function Notice({
  kind,
  children,
}: {
  kind: 'error' | 'info' | 'warning' | 'success';
  children: ComponentChildren;
}) {
  return (
    <div class={`notice notice-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

/** Moves focus to the page's heading when a page opens, so keyboard and screen-reader users start there. */
export function PageHeading({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}
