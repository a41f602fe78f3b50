/** The troubleshooting list for one status error code, with the tunnel's own values in its commands. */
import type { StatusErrorCode } from '../../shared/schemas';
import { troubleshooting } from '../../shared/troubleshooting';
import type { Tunnel } from './api';
import { CodeBlock } from './components';

const WHERE: Record<string, string> = {
  bastion: 'On the bastion',
  'customer host': 'On the host running ssh',
  'your machine': 'From any machine',
};

export function TroubleshootingPanel({
  code,
  tunnel,
  open,
}: {
  code: StatusErrorCode;
  tunnel: Tunnel;
  open?: boolean;
}) {
  const guide = troubleshooting(code, tunnel);
  return (
    <section class="card troubleshooting" aria-labelledby="ts-h" data-troubleshooting={code}>
      <details open={open}>
        <summary>
          <h2 id="ts-h">
            Troubleshooting: {guide.title} <code>{code}</code>
          </h2>
        </summary>
        <ol class="steps">
          {guide.steps.map((step, i) => (
            <li key={`${code}-${i}`}>
              {step.where && <span class="where">{WHERE[step.where]}: </span>}
              {step.text}
              {step.command && <CodeBlock name={`command for step ${i + 1}`} text={step.command} />}
            </li>
          ))}
        </ol>
      </details>
    </section>
  );
}
