// A project's members and their roles (GET/POST/DELETE /api/projects/{id}/members/): part of
// Settings.

import { type FormEvent, useState } from "react";

import { ErrorNote } from "../../components/ErrorNote";
import { Options } from "../../components/Options";
import { useResource } from "../../hooks/useResource";
import { api, type ApiError, asApiError, type Member, type Project, type Role } from "../../lib/api";

const ROLES: Role[] = ["admin", "reviewer", "annotator", "viewer"];

// What each role may do, shown under the add form (and to screen readers with each picker).
const ROLE_HELP: Record<Role, string> = {
  viewer: "sees the project",
  annotator: "labels images",
  reviewer: "labels images, reviews suspect labels and sees annotator quality",
  admin: "everything: settings, members, uploads, training",
};

export function Members({ project }: { project: Project }) {
  const members = useResource<Member[]>(`/api/projects/${project.id}/members/`);
  const [error, setError] = useState<ApiError | null>(null);

  async function call(run: () => Promise<unknown>) {
    try {
      await run();
      setError(null);
      members.reload();
    } catch (caught) {
      setError(asApiError(caught));
    }
  }

  const setMember = (name: string, newRole: Role) =>
    call(() =>
      api(`/api/projects/${project.id}/members/`, {
        method: "POST",
        body: { username: name, role: newRole },
      }),
    );

  const removeMember = (name: string) =>
    call(() =>
      api(`/api/projects/${project.id}/members/?username=${encodeURIComponent(name)}`, {
        method: "DELETE",
      }),
    );

  return (
    <section className="card" aria-labelledby="members-title">
      <h2 id="members-title">Members</h2>
      {members.error && <ErrorNote error={members.error} />}
      <MemberTable members={members.data} setMember={setMember} removeMember={removeMember} />
      <AddMember setMember={setMember} />
      <ul className="muted small role-help" id="role-help">
        {ROLES.map((r) => (
          <li key={r}>
            <strong>{r}</strong>: {ROLE_HELP[r]}
          </li>
        ))}
      </ul>
      {error && <ErrorNote error={error} />}
    </section>
  );
}

function MemberTable({
  members,
  setMember,
  removeMember,
}: {
  members: Member[] | null;
  setMember: (name: string, role: Role) => Promise<void>;
  removeMember: (name: string) => Promise<void>;
}) {
  return (
    <table className="table">
      <thead>
        <tr>
          <th scope="col">User</th>
          <th scope="col">Role</th>
          <th scope="col">
            <span className="visually-hidden">Remove</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {members?.map((m) => (
          <tr key={m.username}>
            <th scope="row">{m.username}</th>
            <td>
              <select
                aria-label={`Role of ${m.username}`}
                aria-describedby="role-help"
                value={m.role}
                onChange={(e) => setMember(m.username, e.target.value as Role)}
              >
                <Options values={ROLES} />
              </select>
            </td>
            <td>
              <button
                type="button"
                className="btn btn-quiet btn-small"
                onClick={() => removeMember(m.username)}
              >
                Remove<span className="visually-hidden"> {m.username}</span>
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function AddMember({ setMember }: { setMember: (name: string, role: Role) => Promise<void> }) {
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<Role>("annotator");

  async function onAdd(event: FormEvent) {
    event.preventDefault();
    await setMember(username.trim(), role);
    setUsername("");
  }

  return (
    <form className="row add-member" onSubmit={onAdd}>
      <label htmlFor="m-username" className="visually-hidden">
        Username to add
      </label>
      <input
        id="m-username"
        placeholder="username"
        value={username}
        onChange={(e) => setUsername(e.target.value)}
        required
      />
      <label htmlFor="m-role" className="visually-hidden">
        Role
      </label>
      <select id="m-role" aria-describedby="role-help" value={role} onChange={(e) => setRole(e.target.value as Role)}>
        <Options values={ROLES} />
      </select>
      <button type="submit" className="btn">
        Add member
      </button>
    </form>
  );
}
