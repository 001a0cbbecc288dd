import torch


class Seed(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x)
